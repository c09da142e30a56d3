package policy

import (
	"fmt"
	"testing"
)

// BenchmarkCheck measures Check on allowed commands with 1, 10 and 100
// users configured (each with its own key prefix, channels and a category
// rule): go test -run '^$' -bench Check -benchmem ./policy/
func BenchmarkCheck(b *testing.B) {
	commands := []string{
		"GET cache:1",
		"SET cache:1 value EX 60",
		"MGET cache:1 cache:2 cache:3 own:a",
		"HSET own:profile name x age 3",
		"EVAL script 2 cache:1 own:2",
		"PUBLISH news.eu message",
	}
	for _, n := range []int{1, 10, 100} {
		cfg := Config{Users: map[string]string{}}
		for i := range n {
			cfg.Users[fmt.Sprintf("user%d", i)] = fmt.Sprintf(
				"on >pw%d ~user%d:* ~cache:* ~own:* resetchannels &news.* +@all -@dangerous", i, i)
		}
		p, err := New(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		u := p.User(fmt.Sprintf("user%d", n-1))
		for _, line := range commands {
			args := toBytes(splitArgs(line))
			if d := p.Check(u, args); !d.Allowed {
				b.Fatalf("%q denied: %s", line, d.Err)
			}
			b.Run(fmt.Sprintf("users=%d/%s", n, args[0]), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p.Check(u, args)
				}
			})
		}
	}
}
