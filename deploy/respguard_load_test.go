package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// buildRespguard builds ../cmd/respguard once per test binary run.
func buildRespguard(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("../cmd/respguard"); err != nil {
		t.Skip("cmd/respguard does not exist yet")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not in PATH")
	}
	bin := filepath.Join(t.TempDir(), "respguard")
	cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/respguard")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/respguard: %v\n%s", err, out)
	}
	return bin
}

// configCase is a respguard config file as a deployment uses it.
type configCase struct {
	name string
	data []byte
	env  map[string]string
}

func deployedConfigs(t *testing.T) []configCase {
	t.Helper()
	cases := []configCase{
		{name: "respguard.example.yaml", data: readFile(t, "respguard.example.yaml")},
		{name: "container/respguard.yaml", data: readFile(t, "container/respguard.yaml")},
	}
	compose := loadCompose(t).Services["respguard"]
	cases = append(cases, configCase{"compose respguard", readFile(t, "respguard.example.yaml"), compose.Environment})
	for _, dir := range kustomizeDirs(t) {
		for name, cm := range loadKustomizeDir(t, dir).configMaps {
			if data, ok := cm.Data["respguard.yaml"]; ok {
				cases = append(cases, configCase{name: dir + " ConfigMap " + name, data: []byte(data)})
			}
		}
	}
	return cases
}

// TestConfigsLoad runs the real respguard with --print-config on every config
// deploy/ ships, so a key the binary does not know (it refuses to start on
// one) fails here rather than in a pod.
func TestConfigsLoad(t *testing.T) {
	bin := buildRespguard(t)
	secret := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	builtKeys := builtKeys(t, bin)
	sections := map[string]bool{}
	for key := range builtKeys {
		sections[strings.Split(key, ".")[0]] = true
	}
	for _, c := range deployedConfigs(t) {
		t.Run(c.name, func(t *testing.T) {
			skipMissingSections(t, sections, c.data)
			for key := range parseConfig(t, c.name, c.data) {
				if _, ok := builtKeys[key]; !ok {
					t.Errorf("respguard has no config key %s", key)
				}
			}
			file := filepath.Join(t.TempDir(), "respguard.yaml")
			if err := os.WriteFile(file, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "--config", file, "--print-config")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			for k, v := range c.env {
				if !strings.HasPrefix(k, "OTEL_") {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
			}
			if strings.Contains(string(c.data), "password_file:") {
				// The file comes from a Secret in the cluster; use a local one.
				cmd.Env = append(cmd.Env, "RESPGUARD_UPSTREAM_PASSWORD_FILE="+secret)
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("respguard --print-config refused %s: %v\n%s", c.name, err, out)
			}
			if strings.Contains(string(out), "s3cret") {
				t.Error("--print-config shows the upstream password")
			}
			// An env var for a key the binary lacks is ignored silently: catch it.
			for k := range c.env {
				if !strings.HasPrefix(k, "RESPGUARD_") || k == "RESPGUARD_CONFIG" {
					continue
				}
				if key, ok := keyForEnv(k); !ok || builtKeys[key] == nil {
					t.Errorf("%s: respguard has no such key, so it ignores the variable", k)
				}
			}
		})
	}
}

// builtKeys returns the binary's config keys (dotted), from its
// --print-config output with no config file; maps such as policy.users are
// one key.
func builtKeys(t *testing.T, bin string) flatConfig {
	t.Helper()
	cmd := exec.Command(bin, "--print-config")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("respguard --print-config: %v", err)
	}
	keys := parseConfig(t, "--print-config output", out)
	for key, v := range keys {
		if v == nil {
			keys[key] = "" // present, with an empty default
		}
	}
	return keys
}

// skipMissingSections skips a config that uses a whole section (log, policy,
// ...) that the binary does not have yet: the core lands before the packages
// that read those sections are wired in. Once a section exists, every key in
// it is checked.
func skipMissingSections(t *testing.T, sections map[string]bool, data []byte) {
	t.Helper()
	var missing []string
	for key := range loadConfig(t, "config", data) {
		if s := strings.Split(key, ".")[0]; !sections[s] && !slices.Contains(missing, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Skipf("respguard has no %v section yet", missing)
	}
}
