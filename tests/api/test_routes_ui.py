"""How `/ui` is served: the built page as static files (open, no key), or, without a build, a
503 that says how to make one while the API keeps working."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import routes_ui
from api.routes_ui import UI_DIST, mount_ui, ui_dist


def test_ui_without_a_build_says_how_to_make_one(tmp_path: Path) -> None:
    app = FastAPI()
    mount_ui(app, dist=tmp_path / "dist")
    answer = TestClient(app).get("/ui")
    assert answer.status_code == 503
    assert "make ui" in answer.text and str(tmp_path / "dist") in answer.text


def test_ui_serves_the_built_page_without_a_key(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>kgrec</title>")
    (tmp_path / "app.js").write_text("console.log('kgrec');")
    app = FastAPI()
    mount_ui(app, dist=tmp_path)
    client = TestClient(app)
    page = client.get("/ui")  # redirected to /ui/ so the page's relative links resolve
    assert page.status_code == 200 and page.url.path == "/ui/" and "<title>kgrec" in page.text
    assert client.get("/ui/app.js").text == "console.log('kgrec');"
    assert client.get("/ui/missing.js").status_code == 404


def test_an_installed_package_finds_the_page_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = tmp_path / "ui" / "dist"
    built.mkdir(parents=True)
    (built / "index.html").write_text("<!doctype html>")
    monkeypatch.chdir(tmp_path)
    assert ui_dist() == (UI_DIST if (UI_DIST / "index.html").is_file() else built)
    monkeypatch.setattr(routes_ui, "UI_DIST", tmp_path / "site-packages" / "ui" / "dist")
    assert ui_dist() == built
