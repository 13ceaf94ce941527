"""nvnmd: DeePMD students quantized for an NVNMD-style FPGA, its bit-accurate simulator,
host driver, MD engine and Li-ion conductivity workflow.

Subpackages live in their own top-level folders (see pyproject `package-dir`):
`nvnmd.quantize` (quantize/), `nvnmd.sim` (sim/), `nvnmd.host` (host/).
"""

__version__ = "0.1.0"
