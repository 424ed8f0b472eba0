"""The deployment files hold up: promtool checks and unit-tests the alert rules, nginx accepts the site, systemd
accepts the units (scripts/check-deploy.sh, which `make test`'s bootstrap gives what it needs)."""
import subprocess

from tests.harness import ROOT


def test_check_deploy_passes_with_every_check_run():
    result = subprocess.run(["bash", "scripts/check-deploy.sh"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "check-deploy: OK" in out, out[-3000:]
    for check in ("promtool check rules", "promtool test rules", "nginx -t"):
        assert any(line.strip().startswith("PASS") and check in line for line in out.splitlines()), \
            f"{check} did not run (install Debian's prometheus and nginx: sudo apt-get install -y prometheus nginx)"
