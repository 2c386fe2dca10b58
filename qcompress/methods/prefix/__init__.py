"""``prefix`` / ``qpa-prefix``: prefix tuning, one package.

* :mod:`.method`: :class:`PrefixMethod` and :class:`QpaPrefixMethod` (attach, state, counts, collapse);
* :mod:`.deploy`: the collapsed form, the prefix as constant past keys/values (and its PEFT adapter files).
"""

from __future__ import annotations

from qcompress.methods.prefix.method import PrefixAdapted, PrefixMethod, QpaPrefixAdapted, QpaPrefixMethod

__all__ = ["PrefixAdapted", "PrefixMethod", "QpaPrefixAdapted", "QpaPrefixMethod"]
