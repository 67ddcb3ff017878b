"""Run a lab's seed function inside the learner's Django project (executed as a script, by path).

usage: python seeding.py SEED_MODULE_PATH SEED OUTPUT_JSON

The seed module's `seed(rng)` uses the learner's models, so fields they added
with defaults keep working; it returns the manifest the checks read.
"""

import importlib.util
import json
import random
import sys


def main() -> None:
    module_path, seed, output = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    import django

    django.setup()
    from django.db import transaction

    spec = importlib.util.spec_from_file_location("_lab_seed", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with transaction.atomic():
        manifest = module.seed(random.Random(seed))
    with open(output, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)


if __name__ == "__main__":
    main()
