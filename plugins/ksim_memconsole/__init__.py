"""memconsole: the 2009 LKML proposal, ported to ksim.  See :mod:`ksim_memconsole.memconsole`."""

from ksim_memconsole.memconsole import BUF_HEADER_SIZE, Memconsole

__all__ = ["BUF_HEADER_SIZE", "Memconsole"]
