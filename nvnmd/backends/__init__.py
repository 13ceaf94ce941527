"""nvnmd.backends: implementations of nvnmd.backend.Backend (sim, board, deepmd, ...)."""
