package guard

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestGuardDoesNoNetworkIO holds the layering: non-test code imports
// net/http only for Handler's types, no other network package, no Redis
// client, and no respguard package but policy.
func TestGuardDoesNoNetworkIO(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			bad := (path == "net" || strings.HasPrefix(path, "net/")) && path != "net/http" ||
				path == "os/exec" || strings.Contains(path, "redis") ||
				strings.HasPrefix(path, "github.com/respguard/") && path != "github.com/respguard/respguard/policy"
			if bad {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
