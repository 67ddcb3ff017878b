"""Run a lab's seed function inside the learner's Django project (executed as a script, by path).

usage: python seeding.py SEED_MODULE_PATH seed|demo SEED OUTPUT_JSON

The seed module's `seed(rng)` uses the learner's models, so fields they added
with defaults keep working; it returns the manifest the checks read. Its
optional `demo(rng)` makes the small data `lab run` serves and returns the
lines to show the learner (without it, `lab run` serves `seed`'s data).
"""

import importlib.util
import json
import random
import sys


def main() -> None:
    module_path, mode, seed, output = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    import django

    django.setup()
    from django.db import transaction

    spec = importlib.util.spec_from_file_location("_lab_seed", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with transaction.atomic():
        function = module.demo if mode == "demo" and hasattr(module, "demo") else module.seed
        manifest = function(random.Random(seed))
    with open(output, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)


if __name__ == "__main__":
    main()
