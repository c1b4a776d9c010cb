"""A driver whose check_invariants() forgets to return its list (it returns None)."""

from ksim import KernelModule


class InvariantsNone(KernelModule):
    name = "invariants_none"

    async def check_invariants(self):  # type: ignore[override]
        problems: list[str] = []
        problems.append  # the author meant to return problems
