/* pair_style nvq1: the nvnmd quantized (nvq1) model inside LAMMPS, through the project's C kernel
   (nvq1_kernel.h). Header of pair_nvq1.cpp, which says how the integer datapath meets LAMMPS's
   local + ghost atoms and why the result is the same bits on any number of MPI ranks. */
#ifndef LMP_PAIR_NVQ1_H
#define LMP_PAIR_NVQ1_H

#include "pair.h"

#include "nvq1_lmp_file.h"

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairNVQ1 : public Pair {
  public:
    PairNVQ1(class LAMMPS *);
    ~PairNVQ1() override;
    void compute(int, int) override;
    void settings(int, char **) override;
    void coeff(int, char **) override;
    void init_style() override;
    double init_one(int, int) override;
    int pack_forward_comm(int, int *, double *, int, int *) override;
    void unpack_forward_comm(int, int, double *) override;
    int pack_reverse_comm(int, int, double *) override;
    void unpack_reverse_comm(int, int *, double *) override;
    void *extract(const char *, int &) override;

  private:
    nvq1lmp::Model model;
    std::string model_path;
    std::vector<std::string> type_map;
    std::vector<int> lmp2model;  // LAMMPS type (1-based) -> model type, -1 unmapped
    std::vector<double> guard_r2;  // [nt*nt] (closest pair in the training data)^2, Å^2
    double rcut = 0.0;
    double s_force = 0.0, lsb_force = 0.0, lsb_energy = 0.0, lsb_virial = 0.0, coord_scale = 0.0;
    long long box_code[6] = {0, 0, 0, 0, 0, 0};  // xprd yprd zprd yz xz xy
    // per-step buffers (local + ghost atoms)
    std::vector<double> code;   // COORD codes, 3 per atom (exact integers, forward-communicated)
    std::vector<double> fsum;   // force sums at the pair-force fraction (exact integers, reverse-communicated)
    std::vector<long long> coords, types, order, blk_lo, blk_hi, counts;
    std::vector<int> nlist;
    std::vector<signed char> shifts;
    std::vector<double> work, atom_e, fk;
    // totals since the run began (read with extract("nvq1_stats"))
    double stats[4] = {0, 0, 0, 0};  // saturations, guard pairs, computes, max row width
    bool warned_guard = false;
    void allocate();
};

}  // namespace LAMMPS_NS

#endif
