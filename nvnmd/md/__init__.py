"""nvnmd.md: the host-side MD engine (neighbour lists with skin, integrators, thermostats, reporters)."""
