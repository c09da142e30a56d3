package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering holds the import rules of STYLE.md: leaves (proxy/resp,
// policy, telemetry) import no other respguard package, pool imports only
// proxy/resp, and nothing imports cmd or deploy.
func TestLayering(t *testing.T) {
	allowed := map[string][]string{
		"proxy/resp": {},
		"policy":     {},
		"telemetry":  {},
		"pool":       {"proxy/resp"},
	}
	const module = "github.com/respguard/respguard/"
	for pkg, ok := range allowed {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../../"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			rel, ours := strings.CutPrefix(dep, module)
			if !ours || rel == pkg || strings.HasPrefix(rel, pkg+"/") || contains(ok, rel) {
				continue
			}
			t.Errorf("%s imports %s, which is not below it", pkg, rel)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
