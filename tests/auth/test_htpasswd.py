"""HTPasswdAuth / HTPasswdAprAuth against files written by Apache's own ``htpasswd``
(Debian's apache2-utils) in every format it writes, through the login form."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.auth.conftest import login

HTPASSWD = shutil.which("htpasswd")
pytestmark = pytest.mark.skipif(HTPASSWD is None, reason="htpasswd (apache2-utils) missing")

# flag -> (user, password, what the stored hash starts with or None for DES/plain)
FORMATS = {
    "-m": ("md5user", "md5 pass wörd", "$apr1$"),
    "-s": ("shauser", "sha-secret", "{SHA}"),
    "-B": ("bcryptuser", "bcrypt-secret", "$2y$"),
    "-d": ("cryptuser", "crypt12", None),
}
PLAIN = ("plainuser", "plain-secret")  # ``htpasswd -p``: refused, as Apache on Unix


def htpasswd(path: Path, flag: str, user: str, password: str) -> None:
    args = [HTPASSWD, "-b", flag]
    if not path.exists():
        args.append("-c")
    if flag == "-B":
        args += ["-C", "5"]  # a cheap cost keeps the test fast
    subprocess.run(args + [str(path), user, password], check=True, capture_output=True)


@pytest.fixture
def htfile(tmp_path: Path) -> Path:
    path = tmp_path / "site.htpasswd"
    for flag, (user, password, _prefix) in FORMATS.items():
        htpasswd(path, flag, user, password)
    htpasswd(path, "-p", *PLAIN)
    return path


def test_the_file_has_every_format(htfile: Path) -> None:
    lines = dict(line.split(":", 1) for line in htfile.read_text().splitlines())
    for _flag, (user, _password, prefix) in FORMATS.items():
        if prefix:
            assert lines[user].startswith(prefix)
    assert lines["plainuser"] == PLAIN[1]
    assert len(lines["cryptuser"]) == 13


@pytest.mark.parametrize("cls", ["HTPasswdAuth", "HTPasswdAprAuth"])
@pytest.mark.parametrize("flag", list(FORMATS))
def test_each_format_logs_in(make_app, htfile: Path, cls: str, flag: str) -> None:
    user, password, _prefix = FORMATS[flag]
    _m, app = make_app(f"Authz(auth={cls}({str(htfile)!r}), forceBuild='auth')")
    c = app.test_client()
    assert login(c, user, password).headers["Location"] == "./"
    assert f'<span class="user">{user}</span>' in c.get("/about").get_data(as_text=True)
    bad = app.test_client()
    assert login(bad, user, password + "x").headers["Location"] == "./authfail"
    assert login(bad, user, "").headers["Location"] == "./authfail"
    # another user's password is not this user's
    other = "shauser" if user != "shauser" else "md5user"
    assert login(bad, other, password).headers["Location"] == "./authfail"


def test_plain_text_and_unknown_formats_are_refused(make_app, htfile: Path,
                                                   caplog) -> None:
    """Apache on Unix refuses ``htpasswd -p`` entries (checked against Debian's apache2);
    an entry in a format bbweb does not know must not be compared as plain text either,
    or the hash copied out of the file would be the password. MD5 crypt (``$1$``), which
    Apache accepts through crypt(), works with the real password."""
    from passlib.hash import md5_crypt

    unknown = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
    md5 = md5_crypt.hash("md5-crypt-pw")
    with htfile.open("a") as fh:
        fh.write(f"argonuser:{unknown}\nmd5cuser:{md5}\n")
    _m, app = make_app(f"Authz(auth=HTPasswdAuth({str(htfile)!r}))")
    with caplog.at_level(logging.ERROR, logger="bbweb.auth"):
        for user, password in (PLAIN, ("argonuser", unknown), ("md5cuser", md5)):
            assert login(app.test_client(), user, password).headers["Location"] \
                == "./authfail", user
    assert any("plainuser" in r.getMessage() and "htpasswd -B" in r.getMessage()
               for r in caplog.records)
    assert login(app.test_client(), "md5cuser", "md5-crypt-pw").headers["Location"] == "./"


def test_a_bcrypt_password_longer_than_72_bytes(make_app, tmp_path: Path, caplog) -> None:
    """``htpasswd -B`` hashes only the first 72 bytes of a password (bcrypt's limit), and
    Apache accepts any password that starts with those bytes; so does bbweb (bcrypt 5
    itself refuses such a password). The cut falls inside a two-byte character here,
    as it does for Apache."""
    long_password = "long-" + "ü" * 40  # 85 bytes in UTF-8; byte 72 is half an ü
    assert len(long_password.encode()) > 72
    path = tmp_path / "long.htpasswd"
    htpasswd(path, "-B", "longuser", long_password)
    assert path.read_text().split(":", 1)[1].startswith("$2y$")
    _m, app = make_app(f"Authz(auth=HTPasswdAuth({str(path)!r}))")
    with caplog.at_level(logging.WARNING, logger="bbweb.auth"):
        c = app.test_client()
        assert login(c, "longuser", long_password).headers["Location"] == "./"
        assert '<span class="user">longuser</span>' in c.get("/about").get_data(as_text=True)
        # the same first 72 bytes (ö and ü share their first byte): Apache accepts it too
        same_prefix = "long-" + "ü" * 33 + "ö" * 7
        assert same_prefix.encode()[:72] == long_password.encode()[:72]
        assert login(app.test_client(), "longuser", same_prefix).headers["Location"] == "./"
        # another long password, sharing no 72-byte prefix, is refused
        other = "LONG-" + "ü" * 40
        assert login(app.test_client(), "longuser", other).headers["Location"] \
            == "./authfail"
        assert login(app.test_client(), "longuser",
                     long_password[:30]).headers["Location"] == "./authfail"
    # nothing blames the file (only the refused logins are logged)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert not [r for r in caplog.records if str(path) in r.getMessage()]


def test_unknown_user_fails(make_app, htfile: Path) -> None:
    _m, app = make_app(f"Authz(auth=HTPasswdAuth({str(htfile)!r}))")
    c = app.test_client()
    assert login(c, "nobody", "md5 pass wörd").headers["Location"] == "./authfail"
    assert login(c, "md5user:x", "md5 pass wörd").headers["Location"] == "./authfail"


def test_file_is_reread_when_it_changes(make_app, htfile: Path) -> None:
    _m, app = make_app(f"Authz(auth=HTPasswdAuth({str(htfile)!r}))")
    c = app.test_client()
    assert login(c, "newcomer", "hello-there").headers["Location"] == "./authfail"
    htpasswd(htfile, "-B", "newcomer", "hello-there")
    assert login(c, "newcomer", "hello-there").headers["Location"] == "./"
    subprocess.run([HTPASSWD, "-D", str(htfile), "newcomer"], check=True,
                   capture_output=True)
    assert login(app.test_client(), "newcomer", "hello-there").headers["Location"] \
        == "./authfail"
    # a changed password (the old one was just verified, and is remembered until then)
    assert login(app.test_client(), "md5user", "md5 pass wörd").headers["Location"] == "./"
    htpasswd(htfile, "-m", "md5user", "changed")
    assert login(app.test_client(), "md5user", "md5 pass wörd").headers["Location"] \
        == "./authfail"
    assert login(app.test_client(), "md5user", "changed").headers["Location"] == "./"


def test_malformed_line_is_skipped_and_logged(make_app, htfile: Path, caplog) -> None:
    good = htfile.read_text()
    htfile.write_text("garbage line without colon\n" + good + ":nouser\n")
    _m, app = make_app(f"Authz(auth=HTPasswdAuth({str(htfile)!r}))")
    with caplog.at_level(logging.WARNING, logger="bbweb.auth"):
        assert login(app.test_client(), "shauser", "sha-secret").headers["Location"] \
            == "./"
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"{htfile} line 1 " in m for m in messages), messages
    n = len(good.splitlines()) + 2
    assert any(f"{htfile} line {n} " in m for m in messages), messages


def test_missing_file_is_a_config_error(make_master, tmp_path: Path) -> None:
    from bbweb.mastercfg.errors import ConfigErrors
    from tests.auth.conftest import authz_cfg

    with pytest.raises(ConfigErrors) as err:
        make_master(authz_cfg("Authz(auth=HTPasswdAuth('no-such.htpasswd'))"))
    assert "master.cfg:" in str(err.value) and "no such file" in str(err.value)


def test_relative_path_is_relative_to_the_basedir(make_master, tmp_path: Path) -> None:
    from tests.auth.conftest import authz_cfg, with_probe

    basedir = tmp_path / "master"
    basedir.mkdir()
    htpasswd(basedir / "users.htpasswd", "-B", "rel", "ative")
    cwd = os.getcwd()
    os.chdir(tmp_path)  # not the basedir
    try:
        m = make_master(authz_cfg("Authz(auth=HTPasswdAuth('users.htpasswd'))"))
    finally:
        os.chdir(cwd)
    app = with_probe(m.app())
    assert login(app.test_client(), "rel", "ative").headers["Location"] == "./"
    app.extensions["bbweb"].db.dispose()


def test_a_verified_password_is_not_hashed_again(htfile: Path, monkeypatch) -> None:
    """Header mode sends the password with every request: a bcrypt check per page would
    make every page slow, so a verified password is remembered (as a keyed digest) for
    the same stored hash — and a wrong one is still checked, and refused, every time."""
    from bbweb.auth import htpasswd as mod

    calls: list[str] = []
    real = mod.verify_hash
    monkeypatch.setattr(mod, "verify_hash", lambda pw, stored, where="": (
        calls.append(stored), real(pw, stored, where))[1])
    ht = mod.HtpasswdFile(str(htfile))
    assert ht.check("bcryptuser", "bcrypt-secret") and len(calls) == 1
    assert ht.check("bcryptuser", "bcrypt-secret") and len(calls) == 1  # remembered
    assert not ht.check("bcryptuser", "bcrypt-secreT") and len(calls) == 2
    assert not ht.check("bcryptuser", "bcrypt-secreT") and len(calls) == 3
    assert "bcrypt-secret" not in repr(ht._verified)  # only a digest is kept
    htpasswd(htfile, "-B", "bcryptuser", "new-secret")
    st = htfile.stat()
    os.utime(htfile, (st.st_atime, st.st_mtime + 5))
    assert not ht.check("bcryptuser", "bcrypt-secret")  # the file changed: checked again
    assert ht.check("bcryptuser", "new-secret")


def test_an_unknown_user_costs_a_real_hash_check(htfile: Path, monkeypatch) -> None:
    """A name that is not in the file is checked against one of the file's own hashes,
    so it is not answered faster than a wrong password for a real user."""
    from bbweb.auth import htpasswd as mod

    calls: list[str] = []
    real = mod.verify_hash
    monkeypatch.setattr(mod, "verify_hash", lambda pw, stored, where="": (
        calls.append(stored), real(pw, stored, where))[1])
    ht = mod.HtpasswdFile(str(htfile))
    assert not ht.check("nobody", "md5 pass wörd")
    first = htfile.read_text().splitlines()[0].split(":", 1)[1]
    assert calls == [first]
