package main

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/respguard/respguard/"

// TestLayering holds the import rules of STYLE.md in one place: leaves
// (proxy/resp, policy, telemetry, proxy/sockio) import no other
// respguard package, pool imports only proxy/resp and proxy/sockio, and
// nothing imports cmd or deploy.
func TestLayering(t *testing.T) {
	allowed := map[string][]string{
		"proxy/resp":   {},
		"policy":       {},
		"telemetry":    {},
		"proxy/sockio": {},
		"pool":         {"proxy/resp", "proxy/sockio"},
	}
	for pkg, ok := range allowed {
		for _, dep := range goList(t, "{{join .Deps \"\\n\"}}", pkg) {
			rel, ours := strings.CutPrefix(dep, module)
			if !ours || rel == pkg || strings.HasPrefix(rel, pkg+"/") || contains(ok, rel) {
				continue
			}
			t.Errorf("%s imports %s, which is not below it", pkg, rel)
		}
	}
}

// TestDecisionPackagesDoNoNetworkIO: policy and policy/guard decide without
// I/O. Their non-test code imports no network package (guard: net/http only
// for its Handler's types), no Redis client and no process execution.
func TestDecisionPackagesDoNoNetworkIO(t *testing.T) {
	for pkg, exceptions := range map[string][]string{
		"policy":       nil,
		"policy/guard": {"net/http", module + "policy"},
	} {
		for _, imp := range goList(t, "{{join .Imports \"\\n\"}}", pkg) {
			if contains(exceptions, imp) {
				continue
			}
			if imp == "net" || strings.HasPrefix(imp, "net/") || imp == "os/exec" ||
				strings.Contains(imp, "redis") || strings.HasPrefix(imp, module) {
				t.Errorf("%s imports %s", pkg, imp)
			}
		}
	}
}

// goList runs go list with format on the package at the module-relative path.
func goList(t *testing.T, format, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", format, "../../"+pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
