"""Ray adapter: a sweep's variants as Ray tasks, on a running cluster or a local instance.

Nothing else imports Ray (an optional extra: `pip install -e '.[ray]'`). Each variant is one
task of one CPU running `sweep.build_variant`; Ray reuses its worker processes, so each imports
TensorFlow once. Tasks return their files as bytes and the driver writes them, so the nodes need
generator installed (same version) and the config's input data at the same paths, but no
shared disk for outputs. Ray's own console output is muted unless --debug.
"""

from __future__ import annotations

import logging
from collections.abc import Generator

from generator.config.schema import Config
from generator.errors import UserError
from generator.runs.sweep import VariantOutcome, build_variant
from generator.support.quiet import muted
from generator.support.text import first_line


def run_on_ray(
    configs: list[Config], address: str | None, jobs: int, debug: bool
) -> Generator[VariantOutcome, None, None]:
    """Build each config as a Ray task, yielding outcomes as they finish.

    With `address`, join that cluster (its CPUs decide how many run at once); without, start a
    local instance with `jobs` CPUs and stop it afterwards. A task whose worker or node dies is
    that variant's one-line failure; the others go on."""
    try:
        import ray
    except ImportError:
        raise UserError(
            "--backend ray: Ray is not installed: pip install -e '.[ray]' (or use --backend local)"
        ) from None
    options = {
        "include_dashboard": False,
        "log_to_driver": debug,
        "logging_level": logging.INFO if debug else logging.ERROR,
    }
    try:
        with muted():
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=jobs, **options)
    except ConnectionError as error:
        raise UserError(
            f"--ray-address {address}: cannot join the Ray cluster ({error}): check the "
            "address ('ray status' on the head node prints it)"
        ) from None
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(build_variant)
        names = {task.remote(config, debug): config.name for config in configs}
        pending = list(names)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                outcome = ray.get(done[0])
            except ray.exceptions.RayError as error:  # its worker died, or its node
                outcome = VariantOutcome(
                    names[done[0]],
                    None,
                    {},
                    f"its Ray task failed ({type(error).__name__}: {first_line(error)})",
                )
            yield outcome
    finally:
        ray.shutdown()
