package proxy

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
)

// infoFields parses INFO text into its fields.
func infoFields(text string) map[string]string {
	f := map[string]string{}
	for _, line := range strings.Split(text, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			f[k] = v
		}
	}
	return f
}

func TestInfoClientsCountsRespguardsClients(t *testing.T) {
	tp := startProxy(t, func(c *Config, _ *pool.Config) { c.Client.MaxClients = 77 })
	direct := redistest.Start(t)
	scenario := func(addr string) *rawConn {
		observer, _ := stateScenario(t, addr) // idle, blocked, in MULTI, subscribed, observer
		tracking := rawTo(t, addr)
		tracking.send("HELLO 3\r\nCLIENT TRACKING ON\r\n")
		tracking.replies(2)
		return observer
	}
	info := func(c *rawConn, section string) map[string]string {
		c.send("INFO" + section + "\r\n")
		text, _ := c.reply().(string)
		return infoFields(text)
	}
	via, want := info(scenario(tp.Addr), " clients"), info(scenario(direct.Addr), " clients")
	for _, f := range []string{"connected_clients", "blocked_clients", "tracking_clients"} {
		if via[f] != want[f] {
			t.Errorf("%s: %q through respguard, %q on Redis with the same clients", f, via[f], want[f])
		}
	}
	if via["pubsub_clients"] != "1" || via["maxclients"] != "77" {
		t.Errorf("pubsub_clients:%s maxclients:%s, want 1 and respguard's max_clients 77", via["pubsub_clients"], via["maxclients"])
	}

	t.Run("the Respguard section keeps Redis's own figures", func(t *testing.T) {
		c := tp.raw(t)
		for _, section := range []string{"", " respguard", " everything"} {
			all := info(c, section)
			n, err := strconv.Atoi(all["respguard_upstream_connected_clients"])
			if err != nil || n < 1 || all["respguard_upstream_maxclients"] != "10000" || all["respguard_upstream_blocked_clients"] != "1" {
				t.Errorf("INFO%s: respguard_upstream_connected_clients=%q maxclients=%q blocked_clients=%q",
					section, all["respguard_upstream_connected_clients"], all["respguard_upstream_maxclients"], all["respguard_upstream_blocked_clients"])
			}
			if section != " respguard" && all["connected_clients"] != "7" {
				t.Errorf("INFO%s: connected_clients=%s, want respguard's 7", section, all["connected_clients"])
			}
		}
	})
	t.Run("a client that leaves is no longer counted", func(t *testing.T) {
		c, gone := tp.raw(t), tp.raw(t)
		gone.send("PING\r\n")
		gone.reply()
		waitConnected := func(want string) {
			deadline := time.Now().Add(10 * time.Second)
			for info(c, " clients")["connected_clients"] != want {
				if time.Now().After(deadline) {
					t.Fatalf("connected_clients stayed at %s, want %s", info(c, " clients")["connected_clients"], want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		waitConnected("8") // the six of the scenario, c and gone
		gone.Close()
		waitConnected("7")
	})
}
