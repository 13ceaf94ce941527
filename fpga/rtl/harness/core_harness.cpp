// core_harness.cpp: Verilator native harness for nvq1_core (fpga/rtl/core/INTERFACE.md).
//
// One process serves many frames: the host side (fpga/verilator.py) writes binary commands on
// the file descriptor argv[1] and reads binary replies on argv[2] (not stdin/stdout, which
// $display may write to), and the clock is toggled here, in C++, so no Python runs per
// cycle. All integers little-endian (the host is x86/ARM little-endian).
//   'W' u8 sel, u32 addr0, u32 n, n x i64   write n words through the frame write port, one per clock
//   'G' u64 max_cycles                      pulse start, clock until done  -> u8 ok, u64 clocks
//   'R' u8 sel, u32 addr0, u32 n            read n result words           -> n x i64
//   'X'                                     synchronous reset (2 clocks)   -> u8 0
//   'Q'                                     exit
// The model class is Vcore (verilator --prefix Vcore), whatever the top module is called.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "Vcore.h"
#include "verilated.h"

static Vcore *top;
static VerilatedContext *ctx;

static void tick() {
    top->clk = 0;
    top->eval();
    ctx->timeInc(1);
    top->clk = 1;
    top->eval();
    ctx->timeInc(1);
}

static FILE *cmd_in, *rep_out;
static bool get(void *p, size_t n) { return std::fread(p, 1, n, cmd_in) == n; }
static void put(const void *p, size_t n) { std::fwrite(p, 1, n, rep_out); }

static void reset() {
    top->rst = 1;
    top->start = 0;
    top->wr_en = 0;
    tick();
    tick();
    top->rst = 0;
    tick();
}

int main(int argc, char **argv) {
    if (argc < 3 || !(cmd_in = fdopen(std::atoi(argv[1]), "rb")) || !(rep_out = fdopen(std::atoi(argv[2]), "wb"))) {
        std::fprintf(stderr, "usage: %s CMD_FD REPLY_FD\n", argv[0]);
        return 2;
    }
    ctx = new VerilatedContext;
    ctx->commandArgs(argc, argv);
    top = new Vcore{ctx};
    reset();
    std::vector<int64_t> buf;
    for (;;) {
        char cmd;
        if (!get(&cmd, 1)) break;
        if (cmd == 'Q') break;
        if (cmd == 'W') {
            uint8_t sel; uint32_t addr, n;
            if (!get(&sel, 1) || !get(&addr, 4) || !get(&n, 4)) break;
            buf.resize(n);
            if (n && !get(buf.data(), 8 * (size_t)n)) break;
            for (uint32_t i = 0; i < n; i++) {
                top->wr_en = 1;
                top->wr_sel = sel;
                top->wr_addr = addr + i;
                top->wr_data = (uint64_t)buf[i];
                tick();
            }
            top->wr_en = 0;
        } else if (cmd == 'G') {
            uint64_t max_cycles, clocks = 0;
            if (!get(&max_cycles, 8)) break;
            top->start = 1;
            tick();
            top->start = 0;
            clocks = 1;
            while (!top->done && clocks < max_cycles) { tick(); clocks++; }
            uint8_t ok = top->done ? 0 : 1;
            put(&ok, 1);
            put(&clocks, 8);
        } else if (cmd == 'R') {
            uint8_t sel; uint32_t addr, n;
            if (!get(&sel, 1) || !get(&addr, 4) || !get(&n, 4)) break;
            buf.resize(n);
            top->rd_sel = sel;
            for (uint32_t i = 0; i < n; i++) {
                top->rd_addr = addr + i;
                tick();                       // rd_data is valid the cycle after the address
                buf[i] = (int64_t)top->rd_data;
            }
            if (n) put(buf.data(), 8 * (size_t)n);
        } else if (cmd == 'X') {
            reset();
            uint8_t ok = 0;
            put(&ok, 1);
        } else {
            std::fprintf(stderr, "core_harness: unknown command 0x%02x\n", (unsigned char)cmd);
            return 2;
        }
        std::fflush(rep_out);
    }
    top->final();
    delete top;
    delete ctx;
    return 0;
}
