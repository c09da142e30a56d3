package policy

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPolicyIsALeafWithoutNetworkIO holds the layering: non-test code of
// package policy imports no network package and no other respguard package.
func TestPolicyIsALeafWithoutNetworkIO(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "net" || strings.HasPrefix(path, "net/") || path == "os/exec" ||
				strings.HasPrefix(path, "github.com/respguard/") || strings.Contains(path, "redis") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
