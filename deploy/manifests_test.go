package deploy_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const kubernetesDir = "kubernetes"

// kustomization is the part of kustomize's Kustomization that these
// manifests use; decoding is strict, so a field outside it fails the test.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
}

// kustomizeDir is one directory of deploy/kubernetes: its objects by kind.
type kustomizeDir struct {
	path        string
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decodeStrict decodes one manifest into the k8s.io/api type for its kind,
// rejecting unknown fields.
func decodeStrict(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	var obj any
	switch tm.APIVersion + "/" + tm.Kind {
	case "apps/v1/Deployment":
		obj = &appsv1.Deployment{}
	case "v1/Service":
		obj = &corev1.Service{}
	case "v1/ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1/Secret":
		obj = &corev1.Secret{}
	default:
		return nil, fmt.Errorf("unexpected kind %s %s", tm.APIVersion, tm.Kind)
	}
	return obj, yaml.UnmarshalStrict(doc, obj)
}

func loadKustomizeDir(t *testing.T, dir string) *kustomizeDir {
	t.Helper()
	var k kustomization
	if err := yaml.UnmarshalStrict(readFile(t, filepath.Join(dir, "kustomization.yaml")), &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("%s/kustomization.yaml: apiVersion/kind %s/%s", dir, k.APIVersion, k.Kind)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if name := filepath.Base(f); name != "kustomization.yaml" && !slices.Contains(k.Resources, name) {
			t.Errorf("%s is not listed in %s/kustomization.yaml", f, dir)
		}
	}
	kd := &kustomizeDir{path: dir, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for _, r := range k.Resources {
		for i, doc := range docSeparator.Split(string(readFile(t, filepath.Join(dir, r))), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			obj, err := decodeStrict([]byte(doc))
			if err != nil {
				t.Fatalf("%s/%s document %d: %v", dir, r, i, err)
			}
			kd.add(obj)
		}
	}
	return kd
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func (kd *kustomizeDir) add(obj any) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		kd.deployments = append(kd.deployments, o)
	case *corev1.Service:
		kd.services = append(kd.services, o)
	case *corev1.ConfigMap:
		kd.configMaps[o.Name] = o
	case *corev1.Secret:
		kd.secrets[o.Name] = o
	}
}

func kustomizeDirs(t *testing.T) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(kubernetesDir, "*", "kustomization.yaml"))
	if err != nil || len(matches) < 2 {
		t.Fatalf("want base/ and sidecar/ kustomizations under %s, found %v (%v)", kubernetesDir, matches, err)
	}
	dirs := make([]string, len(matches))
	for i, m := range matches {
		dirs[i] = filepath.Dir(m)
	}
	return dirs
}

// respguardContainer finds the respguard container of a pod, whether an
// ordinary container or a native sidecar (init container, restartPolicy Always).
func respguardContainer(spec *corev1.PodSpec) *corev1.Container {
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			if list[i].Image == "respguard" || strings.Contains(list[i].Image, "/respguard") {
				return &list[i]
			}
		}
	}
	return nil
}

func TestManifestsDecodeStrictly(t *testing.T) {
	for _, dir := range kustomizeDirs(t) {
		t.Run(dir, func(t *testing.T) {
			kd := loadKustomizeDir(t, dir)
			if len(kd.deployments) == 0 {
				t.Fatalf("%s has no Deployment", dir)
			}
		})
	}
}

func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	doc := []byte("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {prots: []}\n")
	if _, err := decodeStrict(doc); err == nil {
		t.Fatal("a misspelled field decoded without error: the manifest checks would miss typos")
	}
}

func TestRespguardPodsMatchRespguardDefaults(t *testing.T) {
	for _, dir := range kustomizeDirs(t) {
		kd := loadKustomizeDir(t, dir)
		for _, d := range kd.deployments {
			t.Run(dir+"/"+d.Name, func(t *testing.T) {
				spec := &d.Spec.Template.Spec
				c := respguardContainer(spec)
				if c == nil {
					t.Fatal("no respguard container")
				}
				checkSelector(t, d)
				checkProbes(t, c)
				checkHardening(t, spec, c)
				for _, e := range c.Env {
					checkEnvName(t, c.Name, e.Name)
				}
				cfg := checkConfigMount(t, kd, spec, c)
				checkAdminListen(t, cfg)
				checkSecretFiles(t, kd, spec, c, cfg)
				checkServices(t, kd, d, c, cfg)
			})
		}
	}
}

func checkSelector(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod template's labels", k, v)
		}
	}
}

// containerPort resolves a probe or Service port (number or name) on c.
func containerPort(c *corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return -1
}

func checkProbes(t *testing.T, c *corev1.Container) {
	t.Helper()
	probes := []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"livenessProbe", c.LivenessProbe, healthPath}, {"readinessProbe", c.ReadinessProbe, readyPath}}
	if c.StartupProbe != nil {
		probes = append(probes, struct {
			name  string
			probe *corev1.Probe
			path  string
		}{"startupProbe", c.StartupProbe, readyPath})
	}
	for _, p := range probes {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe on the admin port", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s path %s, want %s", p.name, p.probe.HTTPGet.Path, p.path)
		}
		if port := containerPort(c, p.probe.HTTPGet.Port); port != defaultAdminPort {
			t.Errorf("%s port %s is %d, want the admin port %d", p.name, p.probe.HTTPGet.Port.String(), port, defaultAdminPort)
		}
	}
}

func checkHardening(t *testing.T, spec *corev1.PodSpec, c *corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("respguard container has no securityContext")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("want readOnlyRootFilesystem: true")
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("want runAsNonRoot: true")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Error("want runAsUser: 65532 (the image's user)")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("want allowPrivilegeEscalation: false")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Error("want capabilities: {drop: [ALL]} and nothing added")
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && spec.SecurityContext != nil {
		seccomp = spec.SecurityContext.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("want seccompProfile RuntimeDefault")
	}
	r := c.Resources
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if r.Requests.Name(name, "").IsZero() {
			t.Errorf("want a %s request", name)
		}
	}
	if r.Limits.Memory().IsZero() {
		t.Error("want a memory limit")
	}
	if spec.InitContainers != nil && slices.ContainsFunc(spec.InitContainers, func(ic corev1.Container) bool {
		return ic.Name == c.Name && (ic.RestartPolicy == nil || *ic.RestartPolicy != corev1.ContainerRestartPolicyAlways)
	}) {
		t.Error("respguard as an init container must be a native sidecar (restartPolicy: Always)")
	}
}

// checkConfigMount follows --config to the ConfigMap mounted there and returns
// the respguard config it holds, checked for unknown keys.
func checkConfigMount(t *testing.T, kd *kustomizeDir, spec *corev1.PodSpec, c *corev1.Container) flatConfig {
	t.Helper()
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("args %q: want --config %s", c.Args, containerConfig)
	}
	path := c.Args[i+1]
	vol, sub := mountedVolume(spec, c, path)
	if vol == nil || vol.ConfigMap == nil {
		t.Fatalf("--config %s is not on a mounted ConfigMap", path)
	}
	cm := kd.configMaps[vol.ConfigMap.Name]
	if cm == nil {
		t.Fatalf("ConfigMap %s is not in %s", vol.ConfigMap.Name, kd.path)
	}
	data, ok := cm.Data[sub]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", cm.Name, sub)
	}
	return loadConfig(t, "ConfigMap "+cm.Name, []byte(data))
}

// mountedVolume returns the volume that holds path in c and path's name within it.
func mountedVolume(spec *corev1.PodSpec, c *corev1.Container, path string) (*corev1.Volume, string) {
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for i := range spec.Volumes {
			if spec.Volumes[i].Name == m.Name {
				return &spec.Volumes[i], rel
			}
		}
	}
	return nil, ""
}

func checkAdminListen(t *testing.T, cfg flatConfig) {
	t.Helper()
	addr := cfg.str("admin.listen", fmt.Sprintf("127.0.0.1:%d", defaultAdminPort))
	host, port := hostPort(t, "admin.listen", addr)
	if port != defaultAdminPort {
		t.Errorf("admin.listen %s: the probes use port %d", addr, defaultAdminPort)
	}
	if isLoopback(host) {
		t.Errorf("admin.listen %s: the kubelet probes the pod IP, not loopback", addr)
	}
}

// checkSecretFiles checks that every *password_file the config names is a key
// of a Secret mounted at that path.
func checkSecretFiles(t *testing.T, kd *kustomizeDir, spec *corev1.PodSpec, c *corev1.Container, cfg flatConfig) {
	t.Helper()
	files := []string{}
	if f := cfg.str("upstream.password_file", ""); f != "" {
		files = append(files, f)
	}
	if m, ok := cfg["policy.password_files"].(map[string]any); ok {
		for _, f := range m {
			files = append(files, fmt.Sprint(f))
		}
	}
	for _, f := range files {
		vol, key := mountedVolume(spec, c, f)
		if vol == nil || vol.Secret == nil {
			t.Errorf("password file %s is not on a mounted Secret", f)
			continue
		}
		s := kd.secrets[vol.Secret.SecretName]
		if s == nil {
			t.Errorf("Secret %s is not in %s", vol.Secret.SecretName, kd.path)
			continue
		}
		if _, ok := s.StringData[key]; !ok {
			if _, ok := s.Data[key]; !ok {
				t.Errorf("Secret %s has no key %s (for %s)", s.Name, key, f)
			}
		}
	}
}

// checkServices checks that Services select this pod and reach respguard's
// listen port, and that a sidecar's app containers point at its listen address.
func checkServices(t *testing.T, kd *kustomizeDir, d *appsv1.Deployment, c *corev1.Container, cfg flatConfig) {
	t.Helper()
	host, listenPort := hostPort(t, "listen", cfg.str("listen", fmt.Sprintf("127.0.0.1:%d", defaultListenPort)))
	for _, s := range kd.services {
		if !selects(s.Spec.Selector, d.Spec.Template.Labels) {
			continue
		}
		if isLoopback(host) {
			t.Errorf("Service %s routes to respguard, but it listens on %s", s.Name, host)
		}
		for _, p := range s.Spec.Ports {
			got := containerPort(c, p.TargetPort)
			if want := map[string]int32{"redis": int32(listenPort), "admin": defaultAdminPort}[p.Name]; got != want {
				t.Errorf("Service %s port %s targets container port %d, want %d", s.Name, p.Name, got, want)
			}
		}
	}
	for _, app := range d.Spec.Template.Spec.Containers {
		if app.Name == c.Name {
			continue
		}
		env := map[string]string{}
		for _, e := range app.Env {
			env[e.Name] = e.Value
		}
		if env["REDIS_HOST"] != host || env["REDIS_PORT"] != fmt.Sprint(listenPort) {
			t.Errorf("app container %s uses %s:%s, respguard listens on %s:%d",
				app.Name, env["REDIS_HOST"], env["REDIS_PORT"], host, listenPort)
		}
	}
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

func TestManifestsNeedNoUnpinnedImagesButRespguard(t *testing.T) {
	for _, dir := range kustomizeDirs(t) {
		for _, d := range loadKustomizeDir(t, dir).deployments {
			spec := d.Spec.Template.Spec
			for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
				if c.Image != "respguard" && (!strings.Contains(c.Image, ":") || strings.HasSuffix(c.Image, ":latest")) {
					t.Errorf("%s/%s: image %s has no pinned tag", dir, c.Name, c.Image)
				}
			}
		}
	}
}

// TestKustomizeBuilds runs `kubectl kustomize` on each directory when kubectl
// is installed (it needs no cluster).
func TestKustomizeBuilds(t *testing.T) {
	kubectl, err := lookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	for _, dir := range kustomizeDirs(t) {
		out, err := run(kubectl, "kustomize", dir)
		if err != nil {
			t.Errorf("kubectl kustomize %s: %v\n%s", dir, err, out)
			continue
		}
		if !bytes.Contains(out, []byte("image: respguard:dev")) {
			t.Errorf("kubectl kustomize %s: the images: transformer did not set respguard's tag", dir)
		}
	}
}
