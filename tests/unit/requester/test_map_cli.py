"""`mercato map`: argument parsing, task reading and error handling, against a fake Market."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import mercato.cli.map as map_cli
from mercato.cli import app
from mercato.errors import BudgetTooLow
from mercato.requester import MapSummary, ProviderTally, TaskResult

P1 = "0x" + "11" * 20


def _result(i: int, name: str) -> TaskResult:
    return TaskResult(i, name, "ok", 0, 5, f"out {name}\n".encode(), b"", {"r.txt": b"1"}, P1, "0xdeal", 1, "ab")


def _summary(done: tuple[int, ...], tasks: int, **kw: Any) -> MapSummary:
    return MapSummary(tasks, done, kw.get("failed", {}), kw.get("not_run", ()), kw.get("stopped"), 10**8, 1234,
                      2468, 1, {P1: ProviderTally(P1, len(done), 1, 1234)}, 0.5)


class FakeRun:
    def __init__(self, results: list[TaskResult], summary: MapSummary, error: Exception | None) -> None:
        self.results, self.final, self.error = results, summary, error
        self.summary: MapSummary | None = None

    def __aiter__(self) -> Any:
        return self._gen()

    async def _gen(self) -> Any:
        if self.error is not None:
            raise self.error
        for r in self.results:
            yield r
        self.summary = self.final


class FakeMarket:
    """Stands in for Market: records the map call, streams canned results."""

    calls: list[dict[str, Any]] = []
    results: list[TaskResult] = []
    summary: MapSummary | None = None
    error: Exception | None = None

    @classmethod
    def connect(cls, settings: Any, **options: Any) -> FakeMarket:
        return cls()

    async def __aenter__(self) -> FakeMarket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def map(self, job: Any, inputs: Any, **options: Any) -> FakeRun:
        inputs = list(inputs)
        FakeMarket.calls.append({"job": job, "inputs": inputs, **options})
        summary = self.summary or _summary(tuple(range(len(inputs))), len(inputs))
        results = self.results or [_result(i, str(i)) for i in range(len(inputs))]
        return FakeRun(results, summary, self.error)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeMarket]:
    FakeMarket.calls, FakeMarket.results, FakeMarket.summary, FakeMarket.error = [], [], None, None
    monkeypatch.setattr(map_cli, "Market", FakeMarket)
    return FakeMarket


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"MERCATO_HOME": str(tmp_path / "home")}


@pytest.fixture
def job(tmp_path: Path) -> Path:
    (tmp_path / "w.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00")
    path = tmp_path / "job.toml"
    path.write_text('[job]\nworkload = "w.wasm"\nargs = ["run"]\n[limits]\nfuel = 5_000_000_000\n'
                    '[market]\nmax_price = "0.5"\n[map]\ninput_name = "point.json"\n')
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("b.json", "a.json", ".hidden"):
        (folder / name).write_text(name)
    (folder / "sub").mkdir()
    return folder


def invoke(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(app, ["map", *map(str, args)], env=env)


def test_inputs_folder_makes_one_task_per_file(fake: type[FakeMarket], env: dict[str, str], job: Path,
                                               inputs: Path, tmp_path: Path) -> None:
    res = invoke(env, job, "--inputs", inputs, "--ordered", "--budget", "12.5", "--tasks-per-deal", "4",
                 "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    (call,) = fake.calls
    assert call["inputs"] == [inputs / "a.json", inputs / "b.json"]  # sorted, no hidden files, no folders
    assert call["input_name"] == "point.json" and call["ordered"] is True and call["tasks_per_deal"] == 4
    assert call["budget"] == 12_500_000 and call["out_dir"] == tmp_path / "out"
    assert call["max_price_per_cu"] == 500_000 // 5  # the job's max_price over its 5 CU
    assert call["job"].spec.args == ("run",)
    assert "providers" in res.output and "2/2 tasks done" in res.output


def test_args_file_makes_one_task_per_line(fake: type[FakeMarket], env: dict[str, str], job: Path,
                                           tmp_path: Path) -> None:
    (tmp_path / "sweep.txt").write_text("# alpha beta\n0.1  7\n\n  0.2 8\n")
    res = invoke(env, job, "--args-file", tmp_path / "sweep.txt", "--max-price-per-cu", "0.02")
    assert res.exit_code == 0, res.output
    (call,) = fake.calls
    assert call["inputs"] == [["0.1", "7"], ["0.2", "8"]] and call["max_price_per_cu"] == 20_000
    assert call["budget"] is None and call["out_dir"] is None
    assert "out 0" in res.output and "out 1" in res.output  # without --out, each task's stdout is shown


def test_json_prints_a_line_per_task_then_the_summary(fake: type[FakeMarket], env: dict[str, str], job: Path,
                                                      inputs: Path) -> None:
    res = invoke(env, job, "--inputs", inputs, "--json")
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.output.splitlines()]
    assert [line["index"] for line in lines[:-1]] == [0, 1] and lines[0]["stdout"] == "out 0\n"
    assert lines[-1]["summary"]["done"] == 2 and lines[-1]["summary"]["spent"] == 1234
    assert lines[-1]["summary"]["providers"][P1]["tasks"] == 2


@pytest.mark.parametrize(("extra", "message"), [
    ((), "give exactly one of --inputs DIR"),
    (("--inputs", "IN", "--args-file", "IN"), "give exactly one of --inputs DIR"),
    (("--inputs", "nowhere"), "is not a folder"),
    (("--inputs", "IN", "--budget", "1.0000001"), "more than 6 decimals"),
    (("--inputs", "IN", "--max-price-per-cu", "-1"), "--max-price-per-cu must be a decimal number"),
    (("--inputs", "IN", "--tasks-per-deal", "0"), "--tasks-per-deal must be at least 1"),
])
def test_bad_arguments_are_one_clean_line(fake: type[FakeMarket], env: dict[str, str], job: Path, inputs: Path,
                                          extra: tuple[str, ...], message: str) -> None:
    args = [str(inputs) if a == "IN" else a for a in extra]
    res = invoke(env, job, *args)
    assert res.exit_code == 1 and message in " ".join(res.output.split()) and "Traceback" not in res.output
    assert fake.calls == []


def test_an_empty_inputs_folder_and_an_empty_args_file(fake: type[FakeMarket], env: dict[str, str], job: Path,
                                                       tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "none.txt").write_text("# nothing\n\n")
    assert "holds no files" in invoke(env, job, "--inputs", tmp_path / "empty").output
    assert "has no task lines" in invoke(env, job, "--args-file", tmp_path / "none.txt").output


def test_a_bad_input_name_names_the_field(fake: type[FakeMarket], env: dict[str, str], job: Path,
                                          inputs: Path) -> None:
    job.write_text(job.read_text().replace('input_name = "point.json"', 'input_name = "../x"'))
    res = invoke(env, job, "--inputs", inputs)
    assert res.exit_code == 1 and "[map].input_name" in res.output
    job.write_text(job.read_text().replace('input_name = "../x"', 'colour = "red"'))
    assert "[map].colour is not a known key" in " ".join(invoke(env, job, "--inputs", inputs).output.split())


def test_an_up_front_error_is_one_clean_line(fake: type[FakeMarket], env: dict[str, str], job: Path,
                                             inputs: Path) -> None:
    fake.error = BudgetTooLow("your budget 1 mUSD cannot cover the 2 tasks — raise the budget", budget=1, needed=2)
    res = invoke(env, job, "--inputs", inputs, "--budget", "1")
    assert res.exit_code == 1 and "raise the budget" in res.output and "Traceback" not in res.output


def test_an_incomplete_run_keeps_what_finished_and_exits_1(fake: type[FakeMarket], env: dict[str, str], job: Path,
                                                           inputs: Path) -> None:
    fake.results = [_result(0, "a")]
    fake.summary = _summary((0,), 2, not_run=(1,), stopped="budget: 0 mUSD of the 100 mUSD budget is left")
    res = invoke(env, job, "--inputs", inputs, "--json")
    assert res.exit_code == 1
    assert json.loads(res.output.splitlines()[0])["name"] == "a"  # the finished task was still reported
    assert "1 of 2 task(s) were not done (budget: 0 mUSD" in " ".join(res.output.split())
    res = invoke(env, job, "--inputs", inputs)
    assert res.exit_code == 1 and "1 not run" in res.output and "1/2 tasks done" in res.output
