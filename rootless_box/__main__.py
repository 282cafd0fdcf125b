"""`python -m rootless_box`: the same entry point as the rootless-box command."""
from rootless_box.cli import leave, main

leave(main())
