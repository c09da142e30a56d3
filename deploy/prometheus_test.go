package deploy_test

import (
	"bytes"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

const (
	rulesFile          = "prometheus/respguard-rules.yaml"
	rulesTestFile      = "prometheus/respguard-rules.test.yaml"
	prometheusRuleFile = "prometheus/respguard-prometheusrule.yaml"
)

var update = flag.Bool("update", false, "rewrite generated files (the PrometheusRule) instead of comparing them")

// ruleFile is Prometheus's rule file format, as far as these rules use it.
type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name  string `yaml:"name"`
	Rules []rule `yaml:"rules"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// ruleTests is promtool's unit test file format, as far as the tests use it.
type ruleTests struct {
	RuleFiles          []string        `yaml:"rule_files"`
	EvaluationInterval string          `yaml:"evaluation_interval"`
	Tests              []ruleTestGroup `yaml:"tests"`
}

type ruleTestGroup struct {
	Name           string          `yaml:"name"`
	Interval       string          `yaml:"interval"`
	InputSeries    []inputSeries   `yaml:"input_series"`
	AlertRuleTests []alertRuleTest `yaml:"alert_rule_test"`
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertRuleTest struct {
	EvalTime  string     `yaml:"eval_time"`
	Alertname string     `yaml:"alertname"`
	ExpAlerts []expAlert `yaml:"exp_alerts,omitempty"`
}

type expAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

// decodeYAML decodes strictly: a field the types above lack fails, rather
// than vanishing from the file handed to promtool.
func decodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, path)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	var f ruleFile
	decodeYAML(t, rulesFile, &f)
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

func promtool(t *testing.T) string {
	t.Helper()
	path, err := lookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian: apt-get install prometheus); skipping the rule checks that need it")
	}
	return path
}

func TestAlertRulesPassPromtoolCheck(t *testing.T) {
	out, err := runFor(2*time.Minute, promtool(t), "check", "rules", rulesFile)
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestAlertRules runs the promtool unit tests, with each expected alert's
// description filled in from the rules file.
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	description := map[string]string{}
	for _, r := range loadRules(t) {
		description[r.Alert] = r.Annotations["description"]
	}
	var tests ruleTests
	decodeYAML(t, rulesTestFile, &tests)
	for _, g := range tests.Tests {
		for _, c := range g.AlertRuleTests {
			for _, a := range c.ExpAlerts {
				a.ExpAnnotations["description"] = description[c.Alertname]
			}
		}
	}
	abs, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	tests.RuleFiles = []string{abs}
	data, err := yaml.Marshal(&tests)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "respguard-rules.test.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runFor(5*time.Minute, bin, "test", "rules", path); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

var templateAction = regexp.MustCompile(`\{\{`)

// TestAlertRulesSayWhatToDo holds every alert to the same shape: a severity,
// a summary, and a static description (what it means and what to do).
func TestAlertRulesSayWhatToDo(t *testing.T) {
	rules := loadRules(t)
	if len(rules) < 20 {
		t.Fatalf("%s has %d alerts; want the playbook's table and respguard's own", rulesFile, len(rules))
	}
	for _, r := range rules {
		if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
			t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
		}
		if r.Annotations["summary"] == "" || len(r.Annotations["description"]) < 80 {
			t.Errorf("%s: needs a summary and a description that says what to do", r.Alert)
		}
		if templateAction.MatchString(r.Annotations["description"]) {
			t.Errorf("%s: description must be static text (the unit tests fill it in verbatim)", r.Alert)
		}
	}
}

var seriesLabel = regexp.MustCompile(`(\w+)="([^"]*)"`)

// covers reports whether an expected alert stems from the input series:
// they agree on every label both have.
func covers(a expAlert, series string) bool {
	for _, m := range seriesLabel.FindAllStringSubmatch(series, -1) {
		if v, ok := a.ExpLabels[m[1]]; ok && v != m[2] {
			return false
		}
	}
	return true
}

// TestEveryAlertHasUnitTests requires, for every alert, a case where it
// fires and input series that must not fire it (an evaluation expecting no
// alert, or input series that no expected alert stems from).
func TestEveryAlertHasUnitTests(t *testing.T) {
	var tests ruleTests
	decodeYAML(t, rulesTestFile, &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, g := range tests.Tests {
		for _, c := range g.AlertRuleTests {
			fires[c.Alertname] = fires[c.Alertname] || len(c.ExpAlerts) > 0
			for _, s := range g.InputSeries {
				if !slices.ContainsFunc(c.ExpAlerts, func(a expAlert) bool { return covers(a, s.Series) }) {
					quiet[c.Alertname] = true
				}
			}
		}
	}
	for _, r := range loadRules(t) {
		if !fires[r.Alert] {
			t.Errorf("%s: no unit test makes it fire", r.Alert)
		}
		if !quiet[r.Alert] {
			t.Errorf("%s: no unit test has series that must not fire it", r.Alert)
		}
	}
}

// prometheusRule renders the Prometheus Operator's PrometheusRule for the
// rules file: a header, then the file's groups under spec.
func prometheusRule(t *testing.T) []byte {
	t.Helper()
	src := string(readFile(t, rulesFile))
	start := strings.Index(src, "\ngroups:")
	if start < 0 {
		t.Fatalf("%s: no top-level groups:", rulesFile)
	}
	var b strings.Builder
	b.WriteString(`# Generated from respguard-rules.yaml: edit that file, then run
#   go test ./deploy -run TestPrometheusRuleMatchesRulesFile -update
# The Prometheus Operator loads it when its ruleSelector matches these labels
# (kube-prometheus-stack selects release: <its release name> by default).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: respguard
  labels:
    app.kubernetes.io/name: respguard
    app.kubernetes.io/component: alerting-rules
spec:
`)
	for line := range strings.Lines(src[start+1:]) {
		if strings.TrimSpace(line) != "" {
			b.WriteString("  ")
		}
		b.WriteString(line)
	}
	return []byte(b.String())
}

func TestPrometheusRuleMatchesRulesFile(t *testing.T) {
	want := prometheusRule(t)
	if *update {
		if err := os.WriteFile(prometheusRuleFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := readFile(t, prometheusRuleFile); !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date: go test ./deploy -run TestPrometheusRuleMatchesRulesFile -update", prometheusRuleFile)
	}
	var pr struct {
		APIVersion string         `yaml:"apiVersion"`
		Kind       string         `yaml:"kind"`
		Metadata   map[string]any `yaml:"metadata"`
		Spec       ruleFile       `yaml:"spec"`
	}
	decodeYAML(t, prometheusRuleFile, &pr)
	var rules ruleFile
	decodeYAML(t, rulesFile, &rules)
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || len(pr.Spec.Groups) != len(rules.Groups) {
		t.Fatalf("%s: %s %s with %d groups", prometheusRuleFile, pr.APIVersion, pr.Kind, len(pr.Spec.Groups))
	}
	for i := range rules.Groups {
		if !slices.EqualFunc(pr.Spec.Groups[i].Rules, rules.Groups[i].Rules, rulesEqual) {
			t.Errorf("group %s differs from %s", rules.Groups[i].Name, rulesFile)
		}
	}
}

func rulesEqual(a, b rule) bool {
	return a.Alert == b.Alert && a.Expr == b.Expr && a.For == b.For &&
		maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations)
}
