"""GPU catalog: datasheet figures of the accelerators idealrt can predict for, one frozen spec each.

Conventions, so every entry means the same thing:
- `peak_bf16_flops` (and `peak_fp8_flops`, 0 where the GPU has no FP8 tensor cores) is the DENSE tensor-core
  peak (datasheets print the 2:4-sparsity figure too: never use that one). Boost clock, as the datasheets quote it.
- Memory "GB" on these datasheets is binary: an "80GB" H100 carries 80 GiB of HBM, so
  `mem_bytes = N * 2**30` (a little of it is reserved by the driver at run time).
- `interconnect_bw_bytes_s` is per GPU, ONE direction (datasheets quote the bidirectional total: halve it).
- `board_power_w` is the datasheet TDP / maximum board power, used for energy only when the calibration
  did not measure power.
- `sm_count` and `smem_per_sm_bytes`: streaming multiprocessors (AMD: compute units) and the most shared memory
  (AMD: LDS) one of them gives its programs, from the architecture whitepapers cited on each entry.
- `gpus_per_node` and `network_bw_bytes_s`: GPUs one server holds (joined by `interconnect_bw_bytes_s`) and the
  node's network between servers, per GPU, ONE direction (one NIC per GPU in the vendor's reference server: its
  line rate / 8 bits). Used to MODEL pipeline and cross-node tensor parallelism (simulator/network.py); nothing
  here is measured, and every output that uses them says so.
- `price_per_hour_usd` is a reference on-demand list price for ONE GPU; the source and date are on each
  entry. Prices move: use your own for real budgets.
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.names import lookup

GIB = 2**30


@dataclass(frozen=True)
class GPUSpec:
    """Datasheet figures of one GPU model, plus the file name of its measured table (if any)."""

    name: str  # catalog key, e.g. "h100-sxm"
    label: str  # human name for reports
    vendor: str
    peak_bf16_flops: float  # dense, FLOP/s
    hbm_bw_bytes_s: float
    mem_bytes: int
    interconnect_bw_bytes_s: float  # per GPU, one direction
    sm_count: int
    smem_per_sm_bytes: int
    board_power_w: float
    price_per_hour_usd: float  # one GPU, on demand; see the entry for source and date
    table: str | None  # file name in calibration/tables/, or None
    device_names: tuple[str, ...]  # what torch.cuda.get_device_name() prints on it
    peak_fp8_flops: float = 0.0  # dense FP8 (e4m3) tensor-core FLOP/s; 0: no FP8 tensor cores
    gpus_per_node: int = 8  # GPUs of one server, joined by interconnect_bw_bytes_s
    network_bw_bytes_s: float = 0.0  # between servers, per GPU, one direction (modelled, not measured)

    @property
    def mem_gib(self) -> float:
        return self.mem_bytes / GIB

    def peak_flops(self, dtype: str = "bf16") -> float:
        """Dense tensor-core peak for GEMM inputs of `dtype` ("bf16" or "fp8"; 0 where there is none)."""
        return self.peak_fp8_flops if dtype == "fp8" else self.peak_bf16_flops


def _gpu(name: str, label: str, vendor: str, *, tflops: float, hbm_gbps: float, mem_gib: int,
         link_gbps: float, sms: int, smem_kib: int, power_w: float, price_usd: float,
         device_names: tuple[str, ...], table: str | None = None, fp8_tflops: float = 0.0,
         net_gbit: float, per_node: int = 8) -> GPUSpec:
    """A GPUSpec from the units datasheets print (dense TFLOP/s, GB/s, GiB, one-direction GB/s, KiB; the node's
    network per GPU in Gb/s, one direction)."""
    return GPUSpec(name, label, vendor, peak_bf16_flops=tflops * 1e12, hbm_bw_bytes_s=hbm_gbps * 1e9,
                   mem_bytes=mem_gib * GIB, interconnect_bw_bytes_s=link_gbps * 1e9, sm_count=sms,
                   smem_per_sm_bytes=smem_kib * 1024, board_power_w=power_w,
                   price_per_hour_usd=price_usd, table=table, device_names=device_names,
                   peak_fp8_flops=fp8_tflops * 1e12, gpus_per_node=per_node, network_bw_bytes_s=net_gbit / 8 * 1e9)


# Price sources (on-demand, one GPU):
#   LAMBDA = Lambda Cloud on-demand list (lambda.ai/pricing), as quoted by techbytes.app "Serverless GPU
#            Pricing Matrix", prices verified 2026-05-07.
#   MODAL  = Modal serverless GPU list (modal.com/pricing), same article, verified 2026-05-07.
#   SPHERON = Spheron on-demand list as of 2026-03-17, quoted in spheron.network/blog/
#             nvidia-h200-vs-b200-vs-gb200.
#   VULTR  = Vultr on-demand MI300X, as quoted by cliffcenter.com/research/amd-inference-economics
#            (research note 2026-05-18).
#   AWS_P3DN = AWS EC2 on-demand p3dn.24xlarge (us-east-1) list price, aws.amazon.com/ec2/pricing;
#              a long-standing list figure not re-checked in 2026 (V100 is rarely rented now).
# Node network sources (per GPU, one direction; the compute fabric of the vendor's 8-GPU reference server):
#   DGX_A100 = NVIDIA DGX A100 datasheet: 8x single-port ConnectX-6 VPI, 200 Gb/s HDR InfiniBand.
#   DGX_H100 / DGX_H200 = NVIDIA DGX H100 / DGX H200 datasheets: 8x single-port ConnectX-7 VPI, 400 Gb/s.
#   DGX_B200 = NVIDIA DGX B200 datasheet: 8x single-port ConnectX-7 VPI, up to 400 Gb/s.
#   DGX1 = NVIDIA DGX-1 with Tesla V100 datasheet: 4x 100 Gb/s EDR InfiniBand for 8 GPUs (50 Gb/s a GPU).
#   AZURE_MI300X = Microsoft Azure ND MI300X v5 documentation: 8x 400 Gb/s InfiniBand, one per GPU.
#   ASSUMED = no vendor reference server for this PCIe card; taken as one NIC of that rate per GPU (a guess,
#             an upper bound for most PCIe servers).
GPUS: dict[str, GPUSpec] = {
    spec.name: spec
    for spec in (
        # NVIDIA A100 Tensor Core GPU datasheet (nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/
        # pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf): BF16 312 TFLOPS dense (624 sparse),
        # 40GB HBM2 1,555 GB/s, NVLink 600 GB/s (bidirectional), SXM max TDP 400 W.
        # SMs and shared memory: A100 whitepaper (NVIDIA A100 Tensor Core GPU Architecture): 108 SMs, up to 164 KB shared memory per SM.
        _gpu("a100-40gb", "NVIDIA A100 40GB SXM", "nvidia", tflops=312, hbm_gbps=1555, mem_gib=40,
             link_gbps=300, sms=108, smem_kib=164, power_w=400.0, price_usd=1.48,  # LAMBDA, 1x A100 40GB
             device_names=("NVIDIA A100-SXM4-40GB",), net_gbit=200),  # DGX_A100
        # Same datasheet: 80GB HBM2e 2,039 GB/s.
        _gpu("a100-80gb", "NVIDIA A100 80GB SXM", "nvidia", tflops=312, hbm_gbps=2039, mem_gib=80,
             link_gbps=300, sms=108, smem_kib=164, power_w=400.0, price_usd=2.4984,  # MODAL, A100 80GB
             device_names=("NVIDIA A100-SXM4-80GB",), net_gbit=200),  # DGX_A100
        # NVIDIA H100 Tensor Core GPU datasheet (resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-
        # gpu-datasheet), H100 SXM: BF16 1,979 TFLOPS *with sparsity* -> 989.4 dense; FP8 3,958 with sparsity
        # -> 1,979 dense; HBM3 3.35 TB/s;
        # 80GB; NVLink 900 GB/s (bidirectional); max TDP 700 W.
        # SMs and shared memory: H100 whitepaper (NVIDIA H100 Tensor Core GPU Architecture): H100 SXM5 132 SMs, PCIe 114; up to 228 KB shared memory per SM.
        _gpu("h100-sxm", "NVIDIA H100 SXM 80GB", "nvidia", tflops=989.4, hbm_gbps=3350, mem_gib=80,
             link_gbps=450, sms=132, smem_kib=228, power_w=700.0, price_usd=3.78, table="h100-sxm.json",  # LAMBDA, 1x H100 SXM
             device_names=("NVIDIA H100 80GB HBM3",), fp8_tflops=1979, net_gbit=400),  # DGX_H100
        # Same datasheet, H100 PCIe: BF16 1,513 TFLOPS with sparsity -> 756.5 dense; FP8 3,026 with sparsity ->
        # 1,513 dense; HBM2e 2.0 TB/s;
        # 80GB; 300-350 W. Interconnect: PCIe Gen5 x16, 128 GB/s bidirectional (the optional NVLink
        # bridge joins pairs only, so it is not assumed).
        _gpu("h100-pcie", "NVIDIA H100 PCIe 80GB", "nvidia", tflops=756.5, hbm_gbps=2000, mem_gib=80,
             link_gbps=64, sms=114, smem_kib=228, power_w=350.0, price_usd=2.86,  # LAMBDA, 1x H100 PCIe
             device_names=("NVIDIA H100 PCIe",), fp8_tflops=1513, net_gbit=400),  # ASSUMED
        # NVIDIA H200 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h200), H200 SXM: BF16 1,979
        # TFLOPS with sparsity -> 989.4 dense; FP8 3,958 with sparsity -> 1,979 dense; HBM3e 4.8 TB/s; 141GB;
        # NVLink 900 GB/s; up to 700 W.
        # SMs and shared memory: the H100 SXM's GH100 configuration (132 SMs, 228 KB shared memory per SM).
        _gpu("h200", "NVIDIA H200 SXM 141GB", "nvidia", tflops=989.4, hbm_gbps=4800, mem_gib=141,
             link_gbps=450, sms=132, smem_kib=228, power_w=700.0, price_usd=4.54, table="h200.json",  # SPHERON, H200 SXM
             device_names=("NVIDIA H200",), fp8_tflops=1979, net_gbit=400),  # DGX_H200
        # NVIDIA HGX B200 spec (nvidia.com/en-us/data-center/hgx): per GPU FP16/BF16 4.5 PFLOPS with
        # sparsity -> 2.25 dense; FP8 9 PFLOPS with sparsity -> 4.5 dense; HBM3e 8 TB/s; 180GB; NVLink 5 1.8 TB/s
        # (bidirectional); 1,000 W.
        # SMs and shared memory: NVIDIA Blackwell architecture technical brief: 148 SMs per B200; 228 KB shared memory per SM as Hopper.
        _gpu("b200", "NVIDIA B200 SXM 180GB", "nvidia", tflops=2250, hbm_gbps=8000, mem_gib=180,
             link_gbps=900, sms=148, smem_kib=228, power_w=1000.0, price_usd=6.03,  # SPHERON, B200 SXM
             device_names=("NVIDIA B200",), fp8_tflops=4500, net_gbit=400),  # DGX_B200
        # NVIDIA L40S datasheet (resources.nvidia.com/en-us-l40s/l40s-datasheet): BF16 tensor 362.05
        # TFLOPS dense (733 with sparsity), FP8 733 dense (1,466 with sparsity); GDDR6 864 GB/s; 48GB; PCIe Gen4 x16
        # (64 GB/s bidirectional),
        # no NVLink; 350 W.
        # SMs and shared memory: Ada Lovelace architecture whitepaper (AD102): L40S 142 SMs; up to 100 KB shared memory per SM.
        _gpu("l40s", "NVIDIA L40S 48GB", "nvidia", tflops=362.05, hbm_gbps=864, mem_gib=48,
             link_gbps=32, sms=142, smem_kib=100, power_w=350.0, price_usd=1.9512,  # MODAL, L40S
             device_names=("NVIDIA L40S",), fp8_tflops=733, net_gbit=200),  # ASSUMED
        # NVIDIA V100 Tensor Core GPU datasheet (images.nvidia.com/content/technologies/volta/pdf/
        # volta-v100-datasheet-update-us-1165301-r5.pdf), V100 SXM2: NO bf16 support; the figure here is
        # the FP16 tensor peak, 125 TFLOPS; HBM2 900 GB/s; 32GB; NVLink 300 GB/s; 300 W.
        # SMs and shared memory: V100 whitepaper (NVIDIA Tesla V100 GPU Architecture): 80 SMs, up to 96 KB shared memory per SM.
        _gpu("v100", "NVIDIA V100 SXM2 32GB (fp16: no bf16)", "nvidia", tflops=125, hbm_gbps=900,
             mem_gib=32, link_gbps=150, sms=80, smem_kib=96, power_w=300.0, price_usd=3.9015,
             # AWS_P3DN: $31.212/h for 8x V100 32GB
             device_names=("Tesla V100-SXM2-32GB",), net_gbit=50),  # DGX1
        # AMD Instinct MI300X data sheet (amd.com/.../amd-instinct-mi300x-data-sheet.pdf): BF16 2,614.9
        # TFLOPS with sparsity -> 1,307.4 dense; FP8 5,229.8 with sparsity -> 2,614.9 dense; HBM3 5.3 TB/s; 192GB;
        # Infinity Fabric 896 GB/s peak
        # aggregate (bidirectional, 7 links); 750 W.
        # SMs and shared memory: AMD CDNA 3 architecture whitepaper: 304 compute units, 64 KB LDS per CU.
        _gpu("mi300x", "AMD Instinct MI300X 192GB", "amd", tflops=1307.4, hbm_gbps=5300, mem_gib=192,
             link_gbps=448, sms=304, smem_kib=64, power_w=750.0, price_usd=1.85,  # VULTR, MI300X
             device_names=("AMD Instinct MI300X", "AMD Instinct MI300X VF"), fp8_tflops=2614.9,
             net_gbit=400),  # AZURE_MI300X
    )
}

ALIASES: dict[str, str] = {
    "h100sxm": "h100-sxm", "h100pcie": "h100-pcie",  # no "h100" or "a100": each names two catalog GPUs
    "h200-sxm": "h200", "h200-141gb": "h200",
    "a100-40": "a100-40gb", "a100-80": "a100-80gb",
    "v100-32gb": "v100", "v100-sxm2": "v100", "mi300": "mi300x",
}


def get_gpu(name: str) -> GPUSpec:
    """The catalog entry for `name` (case-insensitive; a few aliases such as "h200-sxm" accepted; a name
    that starts several entries, such as "h100", is refused as ambiguous)."""
    return lookup(name, GPUS, ALIASES, "GPU", f"choose from {', '.join(GPUS)} ('idealrt gpus' lists them)")


def gpu_for_device_name(device_name: str) -> GPUSpec | None:
    """The catalog GPU whose `device_names` include what torch.cuda.get_device_name() printed, or None."""
    wanted = device_name.strip().lower()
    for spec in GPUS.values():
        if any(wanted == d.lower() for d in spec.device_names):
            return spec
    return None
