"""What one request costs PostgreSQL: statements per page, index use, rows read. All counted by the server itself."""

from __future__ import annotations

import re

from grader.checkkit import Failure, Inconclusive, check

GROWTH_ALLOWED = 10  # more statements than this for 20 more rows on a page is a query per row
PAGE_CEILING = 100
ROWS_PER_PAGE_ALLOWED = 2_000  # rows PostgreSQL may return for a page of 20 (a page, its joins and prefetches)
BIG_TABLE = "catalog_review"


def _quoted(name: str) -> str:
    return name.replace(" ", "%20")


def _short(query: str, limit: int = 220) -> str:
    """A statement in one line, cut at a word; the evidence has it whole."""
    query = " ".join(query.split())
    return query if len(query) <= limit else query[:limit].rsplit(" ", 1)[0] + " …"


@check("queries-constant")
def test_queries_constant(client, db, catalogue, rng, figures):
    """A list page runs the same number of statements for 5 items as for 25"""
    reviewer = catalogue.some_reviewers(rng, 1, at_least=60)[0]
    lists = (("books", "/api/books/?page=3&page_size={size}"),
             ("reviews", "/api/reviews/?page_size={size}"),
             ("one reader's reviews", f"/api/reviews/?reviewer={_quoted(reviewer)}&page_size={{size}}"))
    problems = []
    for name, path in lists:  # every list is measured, so the report has all the figures
        counted = {}
        for size in (5, 25):
            url = path.format(size=size)
            reply, statements = db.statements(lambda url=url: client.get(url))
            if reply.status != 200:
                raise Failure(f"GET {url} answered {reply.status or reply.error}, expected 200")
            counted[size] = statements
            figures[f"statements, {name}, page of {size}"] = statements.total
        small, large = counted[5], counted[25]
        if large.total - small.total >= GROWTH_ALLOWED:
            query, times = large.most_repeated()
            problems.append(Failure(
                f"a page of 25 {name} ran {large.total} SQL statements and a page of 5 ran {small.total}: about "
                f"{(large.total - small.total) / 20:.0f} more for every row; this one ran {times} times for the "
                f"page of 25: {_short(query)}",
                evidence={"page of 5": small.evidence(3), "page of 25": large.evidence(3)}))
    if problems:
        raise problems[0]


def _leading_keys(db, plan) -> dict[str, str]:
    """The first key column (or expression) of every index the plan uses: "reviewer", "created_at", "lower(...)"."""
    names = sorted({node["Index Name"] for node in plan.nodes() if "Index Name" in node})
    rows = db.query("SELECT c.relname AS name, pg_get_indexdef(c.oid, 1, true) AS leading FROM pg_class c "
                    "WHERE c.relkind = 'i' AND c.relname = ANY(%s)", (names,)) if names else []
    return {row["name"]: row["leading"] for row in rows}


def _row_filters(db, plan, table: str, column: str) -> list[tuple[dict, str]]:
    """Scans of `table` in `plan` that test `column` entry by entry instead of going straight to the matching ones.

    Judged on the plan, not on the SQL: `reviewer = $1`, `upper(reviewer) = upper($1)`, `btrim(reviewer) = $1` and
    `reviewer = ANY($1)` are answered by an index only when a condition on the column is an index condition of an
    index whose first key is that column (or an expression of it). Anything else reads the entries of other readers
    and throws them away: a Filter on the rows, or an index condition on a second column checked in every entry.
    """
    mentions = re.compile(rf"(?<!\w){re.escape(column)}(?!\w)")
    leading = _leading_keys(db, plan)

    def straight(node: dict) -> bool:
        if mentions.search(node.get("Index Cond", "")) and mentions.search(leading.get(node.get("Index Name"), "")):
            return True
        return any(straight(child) for child in node.get("Plans", []) if child["Node Type"].startswith("Bitmap"))

    found = []
    for node in plan.nodes():
        if node.get("Relation Name") != table or node["Node Type"] == "Seq Scan" or straight(node):
            continue
        if mentions.search(node.get("Filter", "")):
            found.append((node, f"Filter: {node['Filter']}"))
        elif mentions.search(node.get("Index Cond", "")):
            index = node.get("Index Name", "?")
            found.append((node, f"Index Cond: {node['Index Cond']}, on {index}, whose first column is "
                                f"{leading.get(index, '?')}"))
    return found


def _unindexed(db, statements, table: str, column: str | None) -> list[dict]:
    """Plans of the statements naming `table` that read it whole, or that filter on `column` entry by entry."""
    found = []
    for statement in statements.naming(table):
        plan = db.plan(statement.query)
        if table in plan.seq_scans():
            found.append({**plan.evidence(), "times": statement.calls, "problem": f"reads the whole of {table}"})
            continue
        for node, test in _row_filters(db, plan, table, column) if column else []:
            walked = f"walks the index {node['Index Name']}" if "Index Name" in node else f"reads {table}"
            found.append({**plan.evidence(), "times": statement.calls, "test": test,
                          "problem": f"{walked} and tests every entry it passes on {column} ({test}): the reviews "
                                     f"of other readers are read and thrown away, because no index leads with "
                                     f"{column} in the form the query compares it"})
            break
    return found


def _indexes(db, table: str) -> list[str]:
    """The indexes of `table` as PostgreSQL has them, for evidence."""
    return [row["indexdef"] for row in db.query(
        "SELECT indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname", (table,))]


@check("filter-uses-index")
def test_filter_uses_index(client, db, catalogue, pages, rng, figures):
    """The reviewer filter and the newest-first order are answered from an index, not by reading every review"""
    size = db.table_sizes(BIG_TABLE).get(BIG_TABLE, {})
    reviewer = catalogue.some_reviewers(rng, 1, at_least=40)[0]
    # The second page of each: a cursor page filters on its position as well.
    first = client.get("/api/reviews/?page_size=20").body or {}
    requests = (
        ("the reviewer filter", f"/api/reviews/?reviewer={_quoted(reviewer)}&page_size=10", "reviewer"),
        ("the newest-first order", pages.link(first.get("next")) if isinstance(first, dict) else None, None),
    )
    problems = []
    for what, path, column in requests:
        if path is None:
            raise Failure("GET /api/reviews/?page_size=20 answered no `next` link to the second page",
                          evidence={"reply": str(first)[:300]})
        reply, statements = db.statements(lambda path=path: client.get(path))
        if reply.status != 200:
            raise Failure(f"GET {path} answered {reply.status or reply.error}, expected 200")
        if not statements.naming(BIG_TABLE):
            raise Inconclusive(f"GET {path} ran no statement on {BIG_TABLE} that this check can judge (was the "
                               "answer cached?), so there is no plan to look at",
                               evidence=statements.evidence())
        unindexed = _unindexed(db, statements, BIG_TABLE, column)
        figures[f"statements without an index, {what}"] = len(unindexed)
        fetched = sum(statement.rows for statement in statements.naming(BIG_TABLE))
        figures[f"rows returned from {BIG_TABLE}, {what}"] = fetched
        if unindexed:
            first_plan = unindexed[0]
            problems.append(Failure(
                f"for {what} (GET {path}) PostgreSQL {first_plan['problem']} ({BIG_TABLE}: {size.get('rows', 0):,} "
                f"rows, {size.get('size', '?')}), in {len(unindexed)} statement(s): {_short(first_plan['query'])}",
                evidence={"plans": unindexed[:2], "table": {BIG_TABLE: size}, "indexes": _indexes(db, BIG_TABLE)}))
        elif column and fetched > ROWS_PER_PAGE_ALLOWED:
            heaviest = max(statements.naming(BIG_TABLE), key=lambda statement: statement.rows)
            problems.append(Failure(
                f"for {what} (GET {path}, a page of 10) PostgreSQL returned {fetched:,} rows of {BIG_TABLE} to your "
                f"service, {heaviest.rows:,} of them from: {_short(heaviest.query)}; the filter is not applied by "
                "PostgreSQL, so every row it passes over is read and sent",
                evidence={"rows": fetched, "heaviest": {"query": heaviest.query[:300], "rows": heaviest.rows,
                                                        "times": heaviest.calls}}))
    if problems:
        raise problems[0]


@check("bounded-pages")
def test_bounded_pages(client, db, figures):
    """No page holds more than 100 items, and a page of 20 reads a page's worth of rows"""
    problems = []
    for name, path in (("books", "/api/books/?page_size=1000"), ("reviews", "/api/reviews/?page_size=1000")):
        reply = client.get(path)
        results = reply.body.get("results") if isinstance(reply.body, dict) else None
        if reply.status != 200 or not isinstance(results, list):
            raise Failure(f"GET {path} answered {reply.error or reply.status}, expected 200 with a page of at most "
                          f"{PAGE_CEILING} {name}",
                          evidence={"request": f"GET {path}"})
        figures[f"{name} on a page of ?page_size=1000"] = len(results)
        if len(results) > PAGE_CEILING:
            problems.append(Failure(f"GET {path} answered {len(results)} {name} on one page; no page may hold more "
                                    f"than {PAGE_CEILING}, whatever ?page_size= asks for",
                                    evidence={"items": len(results), "count": reply.body.get("count")}))
        elif reply.body.get("next") is None:
            problems.append(Failure(f"GET {path} capped the page but says next = null: a client could not reach the "
                                    "rest", evidence={"items": len(results), "count": reply.body.get("count")}))
    for name, path in (("books", "/api/books/?page=5"), ("reviews", "/api/reviews/")):
        reply, statements = db.statements(lambda path=path: client.get(path))
        figures[f"rows returned for 20 {name}"] = statements.rows
        if statements.rows > ROWS_PER_PAGE_ALLOWED:
            heaviest = max(statements.statements, key=lambda statement: statement.rows)
            problems.append(Failure(
                f"to answer a page of 20 {name} (GET {path}), PostgreSQL returned {statements.rows:,} rows to your "
                f"service; {heaviest.rows:,} of them from: {_short(heaviest.query)}",
                evidence={"rows": statements.rows, "statements": statements.total,
                          "heaviest": {"query": heaviest.query[:300], "rows": heaviest.rows, "times": heaviest.calls}}))
    if problems:
        raise problems[0]
