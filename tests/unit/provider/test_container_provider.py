"""A provider offering containers, on the fake ledger with a scripted engine (no podman here):
the ``[container]`` config, cleanup and GPU advertising at start, bid-time admission and every
container decline code, resource-second pricing, and the image-archive check on upload."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from provider_kit import KEYS, STAKE, Harness, LedgerEvents, accept_msg, make_rfq, signed_client, until

from mercato.chain import FakeLedger, FakeMarket
from mercato.domain.jobs import ContainerSpec, JobSpec, Limits
from mercato.domain.wire import RfqAnswer
from mercato.errors import ConfigError
from mercato.provider import ProviderAgent, ProviderConfig, create_app
from mercato.provider.agent import resources_of
from mercato.provider.config import ContainerConfig, PricingConfig
from mercato.provider.pricing import ResourceRates, container_price
from mercato.runtimes import BlobStore, FakeRuntime, content_hash
from mercato.runtimes.container import ContainerRuntime, ContainerSettings, Engine
from mercato.runtimes.gpu import Gpu

pytestmark = pytest.mark.anyio

H100 = Gpu(0, "NVIDIA H100 80GB HBM3", 81559, "GPU-5b6f3a1c-0000-0000-0000-000000000000", "550.54.15")
INPUT = b"container input bytes"


def docker_archive(config: bytes) -> bytes:
    """A minimal ``podman save`` (docker-archive) tar holding one image whose config is ``config``."""
    digest = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{digest}.json", "RepoTags": [], "Layers": []}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("manifest.json", manifest), (f"{digest}.json", config)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ARCHIVE = docker_archive(b'{"architecture":"amd64","config":{"Cmd":["true"]}}')
ARCHIVE_IMAGE = "sha256:" + hashlib.sha256(b'{"architecture":"amd64","config":{"Cmd":["true"]}}').hexdigest()
LOCAL_IMAGE = "sha256:" + "ab" * 32


class ScriptedEngine:
    """Stands in for ``subprocess.run`` of the engine CLI: knows some images and stale containers."""

    def __init__(self, images: tuple[str, ...] = (LOCAL_IMAGE,), stale: tuple[str, ...] = (),
                 missing: bool = False) -> None:
        self.images, self.stale, self.missing = set(images), list(stale), missing
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        if self.missing:
            raise FileNotFoundError(2, "No such file or directory")
        args = argv[1:]
        self.calls.append(args)
        if args[0] == "ps":
            return subprocess.CompletedProcess(argv, 0, "\n".join(self.stale) + "\n", "")
        if args[0] == "rm":
            self.stale = [n for n in self.stale if n not in args]
            return subprocess.CompletedProcess(argv, 0, "", "")
        if args[:2] == ["image", "inspect"]:
            ref = args[-1]
            if ref in self.images:
                return subprocess.CompletedProcess(argv, 0, ref + "\n", "")
            return subprocess.CompletedProcess(argv, 125, "", f"Error: {ref}: image not known\n")
        return subprocess.CompletedProcess(argv, 0, "", "")


def container_spec(*, cpu_millis: int = 2000, memory: int = 1 << 30, wall: float = 60.0,
                   image: str = LOCAL_IMAGE, inputs: bool = False, **c: Any) -> JobSpec:
    pairs = (("data.bin", content_hash(INPUT)),) if inputs else ()
    return JobSpec(runtime="container", workload=image, args=("/bin/sh", "-c", "true"), inputs=pairs,
                   limits=Limits(memory_bytes=memory, wall_clock_s=wall),
                   container=ContainerSpec(cpu_millis=cpu_millis, **c))


@pytest.fixture
async def container_agent(tmp_path: Path, ledger: FakeLedger, events: LedgerEvents) -> AsyncIterator[Any]:
    made: list[Harness] = []

    async def factory(*, engine: ScriptedEngine | None = None, gpus: tuple[Gpu, ...] = (),
                      settings: dict[str, Any] | None = None, runtime: Any = None, **cfg: Any) -> Harness:
        values: dict[str, Any] = dict(data_dir=tmp_path / "agent", lanes=2, stake=STAKE, poll_interval_s=0.01,
                                      housekeeping_interval_s=0.01, runtimes=("container",),
                                      max_memory_bytes=4 << 30,
                                      pricing=PricingConfig(utilization_markup=Fraction(0)))
        config = ProviderConfig(**(values | cfg))
        scripted = engine or ScriptedEngine()
        if runtime is None:
            runtime = ContainerRuntime(BlobStore(tmp_path / "rt-blobs"), state_dir=tmp_path / "state",
                                       engine=Engine("podman", "podman"), gpus=list(gpus), run=scripted,
                                       settings=ContainerSettings(namespace="unit", **(settings or {})))
        market = ledger.client(KEYS["provider1"])
        agent = ProviderAgent(config, market, events=events, runtimes={"container": runtime},
                              clock=lambda: ledger.time, challenge_window=ledger.challenge_window)
        await agent.start()
        app = create_app(agent, manage_lifecycle=False)
        h = Harness(agent, signed_client(app, KEYS["requester1"]), ledger, FakeRuntime(), market,
                    extra={"engine": scripted, "runtime": runtime}, app=app)
        made.append(h)
        return h

    yield factory
    for h in made:
        await h.client.aclose()
        if h.agent.started:
            await h.agent.stop()


async def _answer(h: Harness, requester: FakeMarket, spec: JobSpec, **kw: Any) -> RfqAnswer:
    rfq = make_rfq(h.provider, requester.address, spec=spec, **kw)
    r = await h.client.post("/v1/rfq", json=rfq.model_dump())
    assert r.status_code == 200, r.text
    return RfqAnswer.model_validate(r.json())


async def _declined(h: Harness, requester: FakeMarket, spec: JobSpec, code: str, **kw: Any) -> str:
    answer = await _answer(h, requester, spec, **kw)
    assert answer.bid is None and answer.decline is not None, answer
    assert answer.decline.code == code, answer.decline
    return answer.decline.reason


# -- configuration ----------------------------------------------------------------------------------


def test_container_section_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "provider.toml"
    path.write_text('[provider]\nruntimes = ["wasm", "container"]\n'
                    '[pricing]\nprice_per_vcpu_s = 7\nprice_per_gib_s = 3\nprice_per_gpu_s = 900\n'
                    '[container]\nengine = "podman"\nmax_cpu_millis = 4000\nmax_wall_clock_s = 120\n'
                    'gpus = "off"\ncontainers_conf = "conf/containers.conf"\n'
                    'engine_args = ["--storage-driver", "vfs"]\n')
    cfg = ProviderConfig.load(path)
    assert cfg.runtimes == ("wasm", "container")
    assert (cfg.pricing.price_per_vcpu_s, cfg.pricing.price_per_gib_s, cfg.pricing.price_per_gpu_s) == (7, 3, 900)
    c = cfg.container
    assert (c.engine, c.max_cpu_millis, c.max_wall_clock_s, c.gpus) == ("podman", 4000, 120, "off")
    assert c.containers_conf == str(tmp_path / "conf" / "containers.conf")  # relative to the file
    # no namespace given: one derived from the provider address, so two agents on a host never clash
    settings = c.settings("0xAbCdEf0123456789abcdef0123456789ABCDEF01")
    assert settings.namespace == "pabcdef012345" and settings.max_cpu_millis == 4000
    assert settings.engine_args == ("--storage-driver", "vfs")
    assert ContainerConfig(namespace="mine").settings("0x00").namespace == "mine"


@pytest.mark.parametrize(("text", "match"), [
    ("[container]\nengin = 'podman'", "unknown container setting"),
    ("[container]\nengine = 'lxc'", "engine must be"),
    ("[container]\nnamespace = 'Bad_Name'", "namespace"),
    ("[container]\nmax_wall_clock_s = 0", "max_wall_clock_s"),
    ("[container]\ngpus = 'yes'", "gpus"),
    ("[pricing]\nprice_per_gpu_s = -1", "price_per_gpu_s"),
    ("[pricing]\nprice_per_vcpu_s = 0.5", "price_per_vcpu_s"),
    ("container = 3", "table"),
    ("[container]\nengine_args = '--vfs'", "engine_args"),
])
def test_container_config_errors_read_like_advice(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        ProviderConfig.load(path)


def test_resources_digest_changes_only_for_container_providers() -> None:
    plain = ProviderConfig()
    assert resources_of(plain) == resources_of(plain, [H100])  # GPUs count only where containers run
    box = ProviderConfig(runtimes=("container",))
    assert resources_of(box) != resources_of(box, [H100]) != resources_of(plain)


# -- start -------------------------------------------------------------------------------------------


async def test_start_removes_stale_containers_and_advertises_gpus(container_agent, ledger: FakeLedger) -> None:
    engine = ScriptedEngine(stale=("mercato-unit-dead1-aa", "mercato-unit-dead2-bb"))
    h: Harness = await container_agent(engine=engine, gpus=(H100,), settings={"gpu_mode": "cdi"})
    removed = [c for c in engine.calls if c[0] == "rm"]
    assert removed == [["rm", "--force", "--volumes", "--time", "0", "mercato-unit-dead1-aa", "mercato-unit-dead2-bb"]]
    assert engine.stale == []
    info = (await h.client.get("/v1/info")).json()
    assert info["runtimes"] == ["container"]
    assert info["gpus"] == [{"model": "NVIDIA H100 80GB HBM3", "memory_mb": 81559}]
    assert info["resources"]["gpus"] == info["gpus"] and info["resources"]["container"]["network"] is False
    entry = h.provider.provider_info()
    assert entry.resources == hashlib.sha256(json.dumps(info["resources"], sort_keys=True).encode()).digest()
    assert entry.resources == resources_of(h.agent.cfg, [H100])


async def test_start_survives_a_missing_engine(container_agent, requester: FakeMarket) -> None:
    h: Harness = await container_agent(engine=ScriptedEngine(missing=True))
    assert h.agent.started and (await h.client.get("/v1/info")).json()["gpus"] == []
    reason = await _declined(h, requester, container_spec(), "runtime")
    assert "cannot run containers" in reason


# -- bids and declines -------------------------------------------------------------------------------


async def test_container_bid_is_priced_per_resource_second(container_agent, requester: FakeMarket) -> None:
    h: Harness = await container_agent()
    spec = container_spec(cpu_millis=2000, memory=1 << 30, wall=60.0)
    answer = await _answer(h, requester, spec, min_collateral=5)
    assert answer.bid is not None, answer.decline
    # 60 s x (2 vCPU x 100 + 1 GiB x 50) with the default rates, no utilization markup here
    assert answer.bid.terms.price == 15_000 == container_price(spec, ResourceRates(100, 50, 10_000))
    assert answer.bid.terms.collateral == 19 * 15_000 and answer.bid.price_per_cu == 0


async def test_price_over_max_price_is_declined_with_the_ask(container_agent, requester: FakeMarket) -> None:
    h: Harness = await container_agent()
    reason = await _declined(h, requester, container_spec(), "price", max_price=14_999)
    assert "15000" in reason and "max_price" in reason


async def test_gpu_job_without_gpus_is_declined_no_gpu(container_agent, requester: FakeMarket) -> None:
    h: Harness = await container_agent()
    reason = await _declined(h, requester, container_spec(gpus=1), "no_gpu")
    assert "has none" in reason


async def test_gpu_job_is_matched_and_priced_per_gpu_second(container_agent, requester: FakeMarket) -> None:
    h: Harness = await container_agent(gpus=(H100,), settings={"gpu_mode": "cdi"})
    spec = container_spec(gpus=1, gpu_model="H100", gpu_memory_mb=80_000)
    answer = await _answer(h, requester, spec)
    assert answer.bid is not None, answer.decline
    assert answer.bid.terms.price == 60 * (2 * 100 + 50 + 10_000)
    reason = await _declined(h, requester, container_spec(gpus=1, gpu_model="A100"), "no_gpu")
    assert "A100" in reason
    assert "2 GPU" in await _declined(h, requester, container_spec(gpus=2), "no_gpu")


async def test_gpu_without_cdi_on_podman_is_declined_with_the_fix(container_agent, requester: FakeMarket) -> None:
    h: Harness = await container_agent(gpus=(H100,), settings={"gpu_mode": "gpus"})
    assert "nvidia-ctk cdi generate" in await _declined(h, requester, container_spec(gpus=1), "no_gpu")


async def test_image_the_provider_cannot_obtain_is_declined(container_agent, requester: FakeMarket) -> None:
    h: Harness = await container_agent(engine=ScriptedEngine(images=()), settings={"allow_pull": False})
    reason = await _declined(h, requester, container_spec(), "image")
    assert "image_archive" in reason
    ref = "registry.example/app@sha256:" + "cd" * 32
    assert "does not pull" in await _declined(h, requester, container_spec(image_ref=ref), "image")
    # shipped as an archive: nothing to check before the upload
    answer = await _answer(h, requester, container_spec(image=ARCHIVE_IMAGE, image_archive=content_hash(ARCHIVE)))
    assert answer.bid is not None, answer.decline


@pytest.mark.parametrize(("spec_kw", "match"), [
    ({"cpu_millis": 3000}, "vCPUs"),
    ({"wall": 7200.0}, "wall clock"),
    ({"network": "bridge"}, "without network"),
    ({"pids": 10_000}, "processes"),
    ({"memory": 8 << 30}, "memory cap"),
])
async def test_reservations_over_the_caps_are_declined(container_agent, requester: FakeMarket,
                                                       spec_kw: dict[str, Any], match: str) -> None:
    h: Harness = await container_agent(settings={"max_cpu_millis": 2000})
    assert match in await _declined(h, requester, container_spec(**spec_kw), "limits")


async def test_wasm_only_provider_declines_container_jobs(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    answer = await _answer(h, requester, container_spec())
    assert answer.decline is not None and answer.decline.code == "runtime"


# -- upload and run ----------------------------------------------------------------------------------


async def test_archive_of_another_image_is_refused_on_upload(container_agent, requester: FakeMarket) -> None:
    h: Harness = await container_agent()
    spec = container_spec(image="sha256:" + "77" * 32, image_archive=content_hash(ARCHIVE))
    answer = await _answer(h, requester, spec)
    assert answer.bid is not None, answer.decline
    bid = answer.bid.model_dump()
    r = await h.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    assert r.status_code == 200
    r = await h.client.put(f"/v1/blobs/{content_hash(ARCHIVE)}", content=ARCHIVE)
    assert r.status_code == 422 and f"holds image {ARCHIVE_IMAGE}" in r.text
    st = (await h.client.get(f"/v1/deals/{bid['deal_id']}")).json()
    assert st["state"] == "failed" and st["error"].startswith("image rejected")
    assert not h.agent.blobs.has(content_hash(ARCHIVE))
    garbage = b"not a tar at all"
    spec2 = container_spec(image=ARCHIVE_IMAGE, image_archive=content_hash(garbage))
    assert (await _answer(h, requester, spec2)).bid is not None
    r = await h.client.put(f"/v1/blobs/{content_hash(garbage)}", content=garbage)
    assert r.status_code == 422 and "podman save" in r.text


async def test_container_deal_waits_for_its_archive_then_runs_and_commits(container_agent,
                                                                          requester: FakeMarket) -> None:
    fake = FakeRuntime(name="container", stdout=b"ran\n", fuel_used=0)
    h: Harness = await container_agent(runtime=fake)
    spec = container_spec(image=ARCHIVE_IMAGE, image_archive=content_hash(ARCHIVE), inputs=True)
    answer = await _answer(h, requester, spec)
    assert answer.bid is not None, answer.decline
    bid = answer.bid.model_dump()
    r = await h.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    # the image ID is no blob: the deal waits for the archive and the input, nothing else
    assert sorted(r.json()["missing_inputs"]) == sorted([content_hash(ARCHIVE), content_hash(INPUT)])
    await h.upload(ARCHIVE, INPUT)
    await until(lambda: _state_is(h, bid["deal_id"], "committed"))
    assert fake.calls == [spec]


async def _state_is(h: Harness, deal_id: str, state: str) -> bool:
    return await h.state(deal_id) == state
