package deploy_test

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// composeFile is the part of the Compose specification deploy/compose.yaml
// uses. Decoding is strict: a field outside it fails the test (add it here
// once you have checked it against the spec).
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string                       `yaml:"image"`
	Build       *composeBuild                `yaml:"build"`
	Command     []string                     `yaml:"command"`
	Volumes     []string                     `yaml:"volumes"`
	Environment map[string]string            `yaml:"environment"`
	Ports       []string                     `yaml:"ports"`
	DependsOn   map[string]composeDependency `yaml:"depends_on"`
	Healthcheck *struct {
		Test     []string `yaml:"test"`
		Interval string   `yaml:"interval"`
		Timeout  string   `yaml:"timeout"`
		Retries  int      `yaml:"retries"`
	} `yaml:"healthcheck"`
	User        string   `yaml:"user"`
	ReadOnly    bool     `yaml:"read_only"`
	CapDrop     []string `yaml:"cap_drop"`
	SecurityOpt []string `yaml:"security_opt"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

type composeDependency struct {
	Condition string `yaml:"condition"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, "compose.yaml")))
	dec.KnownFields(true)
	var c composeFile
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

// containerPorts returns the container side of each published port
// ("127.0.0.1:6380:6380" -> 6380).
func containerPorts(t *testing.T, s composeService) []int {
	t.Helper()
	var ports []int
	for _, p := range s.Ports {
		n, err := strconv.Atoi(p[strings.LastIndex(p, ":")+1:])
		if err != nil {
			t.Errorf("port %q: %v", p, err)
		}
		ports = append(ports, n)
	}
	return ports
}

func TestComposeServicesAreConsistent(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"redis", "respguard", "otel-collector", "jaeger"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("compose.yaml has no %s service", name)
		}
	}
	for name, s := range c.Services {
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
			}
		}
		for _, v := range s.Volumes {
			src := strings.Split(v, ":")[0]
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			}
		}
		if !strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("%s: image %q has no pinned tag", name, s.Image)
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes %s beyond loopback", name, p)
			}
		}
	}
	if b := c.Services["respguard"].Build; b != nil {
		if _, err := os.Stat(filepath.Join(b.Context, b.Dockerfile)); err != nil {
			t.Errorf("respguard build: %v", err)
		}
	}
}

func TestComposeRespguardMatchesExampleConfig(t *testing.T) {
	c := loadCompose(t)
	rg := c.Services["respguard"]
	example := loadConfig(t, "respguard.example.yaml", readFile(t, "respguard.example.yaml"))

	i := slices.Index(rg.Command, "--config")
	if i < 0 || i+1 >= len(rg.Command) {
		t.Fatalf("respguard command %q: want --config FILE", rg.Command)
	}
	if !slices.Contains(rg.Volumes, "./respguard.example.yaml:"+rg.Command[i+1]+":ro") {
		t.Errorf("respguard does not mount ./respguard.example.yaml at %s", rg.Command[i+1])
	}
	for name := range rg.Environment {
		checkEnvName(t, "compose respguard", name)
	}
	published := containerPorts(t, rg)
	for _, key := range []string{"listen", "admin.listen"} {
		_, filePort := hostPort(t, key, example.str(key, ""))
		addr, ok := rg.Environment[envName(key)]
		if !ok {
			t.Errorf("respguard: %s unset: %s from the example config is loopback inside the container", envName(key), key)
			continue
		}
		host, port := hostPort(t, envName(key), addr)
		if isLoopback(host) || port != filePort {
			t.Errorf("respguard: %s=%s, want 0.0.0.0:%d (the example's port, off loopback)", envName(key), addr, filePort)
		}
		if !slices.Contains(published, port) {
			t.Errorf("respguard: %s port %d is not published", key, port)
		}
	}

	upHost, upPort := hostPort(t, "upstream", rg.Environment[envName("upstream.address")])
	redis, ok := c.Services[upHost]
	if !ok || upPort != 6379 || !slices.Contains(containerPorts(t, redis), upPort) {
		t.Errorf("respguard's upstream %s:%d is not the redis service's port", upHost, upPort)
	}
	if rg.User != "65532:65532" || !rg.ReadOnly || !slices.Equal(rg.CapDrop, []string{"ALL"}) {
		t.Errorf("respguard: want user 65532:65532, read_only, cap_drop [ALL]")
	}
}

// otelCollectorConfig is the part of the collector's config the checks read.
type otelCollectorConfig struct {
	Receivers struct {
		OTLP struct {
			Protocols map[string]struct {
				Endpoint string `yaml:"endpoint"`
			} `yaml:"protocols"`
		} `yaml:"otlp"`
	} `yaml:"receivers"`
	Exporters map[string]map[string]any `yaml:"exporters"`
	Service   struct {
		Pipelines map[string]struct {
			Receivers  []string `yaml:"receivers"`
			Processors []string `yaml:"processors"`
			Exporters  []string `yaml:"exporters"`
		} `yaml:"pipelines"`
	} `yaml:"service"`
}

func TestComposeTracesReachJaeger(t *testing.T) {
	c := loadCompose(t)
	rg := c.Services["respguard"]
	var cfg otelCollectorConfig
	if err := yaml.Unmarshal(readFile(t, "otel-collector.yaml"), &cfg); err != nil {
		t.Fatalf("otel-collector.yaml: %v", err)
	}

	if exp := rg.Environment[envName("telemetry.traces.exporter")]; exp != "otlp-grpc" {
		t.Fatalf("respguard's trace exporter is %q, the checks below assume otlp-grpc", exp)
	}
	u, err := url.Parse(rg.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"])
	if err != nil || u.Hostname() == "" {
		t.Fatalf("OTEL_EXPORTER_OTLP_ENDPOINT %q: %v", rg.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"], err)
	}
	if _, ok := c.Services[u.Hostname()]; !ok {
		t.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT names %s, not a compose service", u.Hostname())
	}
	_, grpcPort := hostPort(t, "otlp grpc receiver", cfg.Receivers.OTLP.Protocols["grpc"].Endpoint)
	if u.Port() != strconv.Itoa(grpcPort) {
		t.Errorf("respguard exports to port %s, the collector's OTLP gRPC receiver listens on %d", u.Port(), grpcPort)
	}

	traces, ok := cfg.Service.Pipelines["traces"]
	if !ok || !slices.Contains(traces.Receivers, "otlp") || !slices.Contains(traces.Exporters, "otlp/jaeger") {
		t.Fatalf("the collector has no otlp -> otlp/jaeger traces pipeline: %+v", traces)
	}
	host, _ := hostPort(t, "otlp/jaeger endpoint", cfg.Exporters["otlp/jaeger"]["endpoint"].(string))
	if _, ok := c.Services[host]; !ok {
		t.Errorf("the collector exports to %s, not a compose service", host)
	}
}
