package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func lookPath(name string) (string, error) { return exec.LookPath(name) }

// run runs a command with a 10s deadline and returns its combined output.
func run(name string, args ...string) ([]byte, error) { return runFor(10*time.Second, name, args...) }

// runFor runs a command with a deadline and returns its combined output.
func runFor(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// unitDirectives parses a systemd unit into "Section.Key" -> values.
func unitDirectives(t *testing.T, data []byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("unit line %q is not Key=Value", line)
			}
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

func TestSystemdUnitIsSandboxed(t *testing.T) {
	data := readFile(t, "systemd/respguard.service")
	d := unitDirectives(t, data)
	want := map[string]string{
		"Service.ExecStart":             "/usr/local/bin/respguard --config " + containerConfig,
		"Service.DynamicUser":           "yes",
		"Service.ProtectSystem":         "strict",
		"Service.ProtectHome":           "yes",
		"Service.NoNewPrivileges":       "yes",
		"Service.PrivateTmp":            "yes",
		"Service.PrivateDevices":        "yes",
		"Service.RestrictNamespaces":    "yes",
		"Service.CapabilityBoundingSet": "",
		"Service.KillSignal":            "SIGTERM",
		"Install.WantedBy":              "multi-user.target",
	}
	for k, v := range want {
		if got, ok := d[k]; !ok || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}

	analyze, err := lookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	// verify insists the ExecStart binary exists: check a copy pointing at /bin/true.
	unit := filepath.Join(t.TempDir(), "respguard.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(data, []byte("/usr/local/bin/respguard"), []byte("/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(analyze, "verify", unit); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestDockerfilePackagesRespguard(t *testing.T) {
	df := string(readFile(t, "Dockerfile"))
	for _, want := range []string{
		"ARG BASE_IMAGE=",
		"ARG GO_IMAGE=",
		"ARG BINARY_SOURCE=build",
		"CGO_ENABLED=0",
		"-X main.version=${VERSION} -X main.commit=${COMMIT}",
		"cp deploy/container/respguard.yaml /out/respguard.yaml",
		"COPY --from=binary /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt",
		"COPY --from=binary /out/respguard.yaml " + containerConfig,
		"org.opencontainers.image.version=",
		"org.opencontainers.image.revision=",
		"USER 65532:65532",
		`ENTRYPOINT ["/usr/local/bin/respguard"]`,
		`CMD ["--config", "` + containerConfig + `"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// TestScriptsParse syntax-checks the shell and Python scripts without running them.
func TestScriptsParse(t *testing.T) {
	shells, _ := filepath.Glob("*.sh")
	more, _ := filepath.Glob("bench/*.sh")
	shells = append(append(shells, more...), "../.ci/image")
	for _, s := range shells {
		if out, err := run("bash", "-n", s); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
		if info, err := os.Stat(s); err == nil && info.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", s)
		}
	}
	libs, _ := filepath.Glob("bench/*.bash") // sourced by the scripts, not run: not executable
	for _, l := range libs {
		if out, err := run("bash", "-n", l); err != nil {
			t.Errorf("bash -n %s: %v\n%s", l, err, out)
		}
	}
	if shellcheck, err := lookPath("shellcheck"); err == nil {
		args := append([]string{"-x", "-P", "SCRIPTDIR"}, append(shells, libs...)...)
		if out, err := run(shellcheck, args...); err != nil {
			t.Errorf("shellcheck: %v\n%s", err, out)
		}
	}
	python, err := lookPath("python3")
	if err != nil {
		return
	}
	pys, _ := filepath.Glob("bench/*.py")
	for _, p := range pys {
		if out, err := run(python, "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])", p); err != nil {
			t.Errorf("python3 %s: %v\n%s", p, err, out)
		}
	}
}
