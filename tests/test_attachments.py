"""Attachments (影像资料、佐证材料) through the web app: a photo's EXIF and GPS are gone when it comes
back; a PDF renamed .jpg, an HTML page, a 50 MB file, a decompression bomb and a truncated JPEG are
refused in Chinese with nothing kept; another township gets 404; every view is in the history; a
rule configured to need one is not signed without it; five a round; one's own removed until the
county acts."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from bidui.clues.attachments import ADDED, REMOVED, VIEWED
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Attachment, Clue, ClueEvent
from bidui.config import attachment_settings
from bidui.home import Home
from bidui.web.app import create_app
from bidui.web.attachments import UploadRefused, read_files
from tests.conftest import PASSWORD


@pytest.fixture
def home(published_home, tmp_path: Path) -> tuple[Home, str, str]:
    root, town, other = published_home
    copy = tmp_path / "home"
    shutil.copytree(root, copy)
    return Home(copy), town, other


def client(home: Home, username: str) -> TestClient:
    c = TestClient(create_app(home), follow_redirects=False)
    page = c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert c.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token}).status_code == 303
    return c


def token(c: TestClient, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', c.get(path, follow_redirects=True).text).group(1)


def first_clue(home: Home, township: str) -> Clue:
    ledger = open_ledger(ledger_url(home.ledger))
    with ledger.read() as s:
        clue = s.scalars(select(Clue).where(Clue.township_code == township, Clue.status == "dispatched")
                         .order_by(Clue.id)).first()
    ledger.close()
    return clue


def upload(c: TestClient, clue_id: int, *files: tuple[str, bytes], csrf: str | None = None):
    """Post the files; (response, the clue page it leads to)."""
    data = {"csrf_token": csrf if csrf is not None else token(c, f"/clues/{clue_id}")}
    r = c.post(f"/clues/{clue_id}/attachments", data=data,
               files=[("files", (name, content, "application/octet-stream")) for name, content in files])
    return r, (c.get(r.headers["location"]).text if r.status_code == 303 else r.text)


def ledger_rows(home: Home) -> tuple[list[Attachment], dict[str, int]]:
    ledger = open_ledger(ledger_url(home.ledger))
    with ledger.read() as s:
        rows = list(s.scalars(select(Attachment).order_by(Attachment.id)))
        kinds = dict(s.execute(select(ClueEvent.kind, func.count()).group_by(ClueEvent.kind)).all())
    ledger.close()
    return rows, kinds


def stored_files(home: Home) -> list[Path]:
    return [p for p in home.attachments.rglob("*") if p.is_file()] if home.attachments.exists() else []


def photo(size: tuple[int, int] = (640, 480), gps: bool = True) -> bytes:
    im = Image.new("RGB", size, (180, 40, 40))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Huawei", "P60"  # make, model
    if gps:
        exif[0x8825] = {1: "N", 2: (25.0, 2.0, 35.5), 3: "E", 4: (102.0, 42.0, 7.0)}
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif.tobytes(), comment=b"taken at the household")
    return out.getvalue()


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def test_a_photo_comes_back_without_exif_or_gps(home) -> None:
    h, town, _ = home
    original = photo()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)  # the test photo does carry a position
    clue = first_clue(h, town)
    c = client(h, "town")
    r, page = upload(c, clue.id, ("C:\\Users\\wang\\入户照片.jpg", original))
    assert r.status_code == 303 and "已上传 1 个附件" in page
    (row,), kinds = ledger_rows(h)
    assert (row.label, row.media_type, row.clue_id, row.uploaded_by) == ("入户照片.jpg", "image/jpeg", clue.id, "town")
    assert kinds.get(ADDED) == 1
    assert f'src="/attachments/{row.id}?thumb=1"' in page and "入户照片.jpg" in page
    assert stored_files(h) == [h.attachments / row.sha256[:2] / row.sha256]

    county = client(h, "county")
    r = county.get(f"/attachments/{row.id}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-disposition"].startswith("inline")
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"
    assert "入户照片" not in r.headers["content-disposition"].split("filename*")[0]  # only the RFC 5987 form
    back = Image.open(io.BytesIO(r.content))
    assert back.size == (640, 480)
    assert len(back.getexif()) == 0 and not back.getexif().get_ifd(0x8825)
    assert "exif" not in back.info and "comment" not in back.info
    assert b"Huawei" not in r.content and b"household" not in r.content
    thumb = county.get(f"/attachments/{row.id}?thumb=1")
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.content)).size) <= 480


@pytest.mark.parametrize(("name", "content", "says"), [
    ("扫描件.jpg", pdf(), "名字是 JPG 图片，内容却是 PDF 文件"),
    ("说明.pdf", b"\n<!DOCTYPE html><html><script>alert(1)</script></html>", "只能上传 JPG、PNG 图片或 PDF 文件（「说明.pdf」实际是 HTML 网页）"),
    ("page.html", b"<html><body>hi</body></html>", "实际是 HTML 网页"),
    ("断了.jpg", photo()[:1500], "图片已损坏或不完整"),
    ("动图.gif", b"GIF89a" + b"\0" * 100, "实际是 GIF 动图"),
])
def test_files_that_are_not_what_they_should_be_are_refused(home, name: str, content: bytes, says: str) -> None:
    h, town, _ = home
    clue = first_clue(h, town)
    r, page = upload(client(h, "town"), clue.id, (name, content))
    assert r.status_code == 400 and "location" not in r.headers  # the page itself: the file name stays out of URLs
    assert says in page
    rows, kinds = ledger_rows(h)
    assert rows == [] and ADDED not in kinds and stored_files(h) == []


def test_a_decompression_bomb_is_refused(home) -> None:
    h, town, _ = home
    out = io.BytesIO()
    Image.new("L", (12000, 6000)).save(out, "PNG")  # 72 megapixels of zeros: a small file, 72 MB decoded
    assert len(out.getvalue()) < 200_000
    r, page = upload(client(h, "town"), first_clue(h, town).id, ("bomb.png", out.getvalue()))
    assert r.status_code == 400
    assert "图片像素过多（12000×6000），最多 50 百万像素" in page
    assert ledger_rows(h)[0] == [] and stored_files(h) == []


def test_a_50_mb_file_is_refused(home) -> None:
    h, town, _ = home
    big = b"\xff\xd8\xff\xe0" + b"\0" * (50 * 1024 * 1024)
    r, page = upload(client(h, "town"), first_clue(h, town).id, ("大照片.jpg", big))
    assert r.status_code == 413 and "「大照片.jpg」文件超过 10 MB" in page
    assert ledger_rows(h)[0] == [] and stored_files(h) == []


def test_the_upload_stops_reading_at_the_limit() -> None:
    """Read as it streams: a 50 MB file is refused once 10 MB of it has come, the rest never read."""
    settings = attachment_settings(None)
    boundary = "xYzZy"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()
    chunk, chunks = 64 * 1024, 50 * 16
    read = 0

    async def stream():
        nonlocal read
        yield head
        for _ in range(chunks):
            read += chunk
            yield b"\xff" * chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    async def run() -> None:
        await read_files({"content-type": f"multipart/form-data; boundary={boundary}"}, stream(), settings,
                         lambda name, value: None)

    with pytest.raises(UploadRefused, match="超过 10 MB"):
        asyncio.run(run())
    assert read <= settings.max_file_bytes + chunk  # not a byte-chunk more than the limit


def test_another_township_gets_404_and_every_view_is_audited(home) -> None:
    h, town, _ = home
    clue = first_clue(h, town)
    town_c = client(h, "town")
    upload(town_c, clue.id, ("证明.pdf", pdf()))
    (row,), _ = ledger_rows(h)
    assert row.media_type == "application/pdf"
    assert f'href="/attachments/{row.id}"' in town_c.get(f"/clues/{clue.id}").text

    other = client(h, "other")
    before = ledger_rows(h)[1].get(VIEWED, 0)
    assert other.get(f"/attachments/{row.id}").status_code == 404
    assert other.get(f"/attachments/{row.id}?thumb=1").status_code == 404
    assert other.get(f"/attachments/{row.id + 1000}").status_code == 404  # the same answer as no attachment
    assert other.get(f"/clues/{clue.id}").status_code == 404  # as for the clue itself
    assert other.post(f"/attachments/{row.id}/remove", data={"csrf_token": token(other, "/inbox")}).status_code == 404
    assert upload(other, clue.id, ("x.pdf", pdf()), csrf=token(other, "/inbox"))[0].status_code == 404
    assert ledger_rows(h)[1].get(VIEWED, 0) == before and len(ledger_rows(h)[0]) == 1

    county = client(h, "county")
    for n in (1, 2, 3):
        r = county.get(f"/attachments/{row.id}")
        assert r.status_code == 200 and r.content == pdf()
        assert r.headers["content-type"] == "application/pdf" and r.headers["content-disposition"].startswith("attachment")
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"
        assert ledger_rows(h)[1][VIEWED] == before + n
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.read() as s:
        last = s.scalars(select(ClueEvent).where(ClueEvent.kind == VIEWED).order_by(ClueEvent.id.desc())).first()
    ledger.close()
    assert (last.clue_id, last.actor, last.payload["attachment"]) == (clue.id, "county", row.id)


def test_no_csrf_no_upload(home) -> None:
    h, town, _ = home
    r, _ = upload(client(h, "town"), first_clue(h, town).id, ("a.jpg", photo()), csrf="forged")
    assert r.status_code == 403
    assert ledger_rows(h)[0] == [] and stored_files(h) == []


def test_five_a_round_and_removing_ones_own_until_the_county_acts(home) -> None:
    h, town, _ = home
    clue = first_clue(h, town)
    c = client(h, "town")
    r, page = upload(c, clue.id, *[(f"p{i}.jpg", photo((100 + i, 80), gps=False)) for i in range(6)])
    assert "每次核实最多 5 个附件" in page and ledger_rows(h)[0] == []
    upload(c, clue.id, *[(f"p{i}.jpg", photo((100 + i, 80), gps=False)) for i in range(4)])
    r, page = upload(c, clue.id, ("p8.png", _png()), ("p9.pdf", pdf()))
    assert "每次核实最多 5 个附件（本轮已有 4 个，还可上传 1 个）" in page
    rows, _ = ledger_rows(h)
    assert len(rows) == 4
    assert "删除" in page and f'action="/attachments/{rows[0].id}/remove"' in page
    r = c.post(f"/attachments/{rows[0].id}/remove", data={"csrf_token": token(c, f"/clues/{clue.id}")})
    page = c.get(r.headers["location"]).text
    assert "附件已删除" in page and f'/attachments/{rows[0].id}"' not in page
    assert ledger_rows(h)[1][REMOVED] == 1
    assert client(h, "county").get(f"/attachments/{rows[0].id}").status_code == 404  # removed: not shown
    r, page = upload(c, clue.id, ("p8.png", _png()), ("p9.pdf", pdf()))
    assert "已上传 2 个附件" in page

    # Signed, then returned by the county: those five are now the record; the answer starts a new round.
    assert sign(c, clue.id).status_code == 303
    county = client(h, "county")
    version = _version(h, clue.id)
    r = county.post(f"/clues/{clue.id}/review", data={"csrf_token": token(county, f"/clues/{clue.id}"),
                                                       "version": version, "decision": "return", "reason": "请补充证明材料",
                                                       "due": str(date.today() + timedelta(days=10))})
    assert r.status_code == 303
    page = c.get(f"/clues/{clue.id}").text
    assert "/remove" not in page
    kept = [a for a in ledger_rows(h)[0] if not a.removed]
    r = c.post(f"/attachments/{kept[0].id}/remove", data={"csrf_token": token(c, f"/clues/{clue.id}")})
    assert r.status_code == 400 and "只能删除本人上传、县级尚未审核的附件" in r.text
    r, page = upload(c, clue.id, ("补充.pdf", pdf()))
    assert "已上传 1 个附件" in page and "退回后补充" in page


def test_a_rule_configured_to_need_one_is_not_signed_without_it(home) -> None:
    h, town, _ = home
    clue = first_clue(h, town)
    h.config.write_text(f'[rules.attachments]\nrequired = ["{clue.rule_code}"]\n', encoding="utf-8")
    c = client(h, "town")
    assert "此类线索须上传照片或证明材料后才能签字" in c.get(f"/clues/{clue.id}").text
    r = sign(c, clue.id)
    assert r.status_code == 400 and "须上传照片或证明材料" in r.text
    assert _status(h, clue.id) == "dispatched"
    upload(c, clue.id, ("入户.jpg", photo()))
    assert sign(c, clue.id).status_code == 303 and _status(h, clue.id) == "verified"


def test_not_required_by_default(home) -> None:
    h, town, _ = home
    clue = first_clue(h, town)
    c = client(h, "town")
    assert "不是必须上传" in c.get(f"/clues/{clue.id}").text
    assert sign(c, clue.id).status_code == 303 and _status(h, clue.id) == "verified"


def sign(c: TestClient, clue_id: int):
    return c.post(f"/clues/{clue_id}/verify", data={
        "csrf_token": token(c, f"/clues/{clue_id}"), "version": _version_of_page(c, clue_id), "outcome": "不属实",
        "action": "", "finding": "入户核实，情况与比对不符", "verified_on": "2026-11-21"})


def _version_of_page(c: TestClient, clue_id: int) -> str:
    return re.search(r'name="version" value="(\d+)"', c.get(f"/clues/{clue_id}").text).group(1)


def _version(h: Home, clue_id: int) -> int:
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.read() as s:
        version = s.get(Clue, clue_id).version
    ledger.close()
    return version


def _status(h: Home, clue_id: int) -> str:
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.read() as s:
        status = s.get(Clue, clue_id).status
    ledger.close()
    return status


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (60, 40), (0, 90, 200, 128)).save(out, "PNG")
    return out.getvalue()


def test_the_same_file_twice_is_kept_once_and_takes_one_place(home) -> None:
    """A photo picked again (or sent twice on a slow line) was kept twice and used two of the
    round's five places (a township clerk's walk, 2026-12-06)."""
    h, town, _ = home
    clue = first_clue(h, town)
    c = client(h, "town")
    same = photo((320, 240), gps=False)
    r, page = upload(c, clue.id, ("入户照片.jpg", same), ("入户照片（副本）.jpg", same))
    assert "已上传 1 个附件；1 个与已上传的文件相同，没有重复保存" in page
    r, page = upload(c, clue.id, ("入户照片.jpg", same))
    assert r.status_code == 400 and "“入户照片.jpg”本轮已上传过，不用再传" in page
    rows, kinds = ledger_rows(h)
    assert len(rows) == 1 and kinds["attachment_added"] == 1
    r, page = upload(c, clue.id, ("门前.jpg", photo((330, 240), gps=False)), ("入户照片.jpg", same))
    assert "已上传 1 个附件；1 个与已上传的文件相同" in page and len(ledger_rows(h)[0]) == 2
