"""Names the command line offers before anything heavy is imported (`lab --help` answers at once)."""

PROVIDERS = ("auto", "local", "external", "docker")  # where PostgreSQL and Redis come from: grader.providers
FORMATS = ("text", "json", "junit", "gradescope", "github")  # what `lab check --format` writes: grader.formats
