"""Cython kernels (typed memoryviews, nogil, OpenMP over row chunks).

Importing this package sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user has set it: idle
OpenMP threads then sleep between parallel regions instead of spinning, which on a
machine busy with other work costs a small fit several times its run time (measured: a
601-row Tobit fit on two threads beside other load, median 0.14 s spinning against 0.024 s
passive), while the wake-up latency is negligible next to a kernel call on enough rows to
be given a second thread (``emstats._config.threads_for_work``).  It must happen before
the OpenMP runtime is loaded, i.e. before the first kernel module is imported.
"""

import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
