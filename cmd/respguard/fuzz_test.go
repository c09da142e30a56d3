package main

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzConfigLoad feeds arbitrary YAML to the config loader: it must return
// a config or an error, never panic or hang.
func FuzzConfigLoad(f *testing.F) {
	for _, seed := range []string{
		"listen: 127.0.0.1:6380\n",
		"upstream:\n  address: 10.0.0.1:6379\n  dial_timeout: 2s\npool:\n  max_conns: 8\n",
		"policy:\n  users:\n    app: \"on >pw ~cache:* +get\"\n  rename:\n    FLUSHALL: \"\"\n",
		"guard:\n  unlink:\n    mode: always\n  stream_maxlen:\n    - pattern: \"events:*\"\n      maxlen: 1000\n",
		"client:\n  idle_timeout: -1s\n",
		"tls:\n  cert_file: /nonexistent\n",
		"[]",
		"listen: [1, 2]\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, yaml []byte) {
		path := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(path, yaml, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, _ = load(newFlags(), []string{"--config", path}, noEnv)
	})
}
