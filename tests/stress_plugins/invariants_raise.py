"""A driver whose check_invariants() itself has a bug: it raises."""

from ksim import KernelModule


class InvariantsRaise(KernelModule):
    name = "invariants_raise"

    async def check_invariants(self) -> list[str]:
        counts: dict[str, int] = {}
        return [f"{counts['records']} records"]  # KeyError: the check is broken, not the driver
