package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// manifestDir holds the manifests, one resource per file.
const manifestDir = "kubernetes"

// kinds are the resources deploy/kubernetes ships, each exactly once, with
// the API version and the Go type it must decode into.
var kinds = map[string]struct {
	apiVersion string
	new        func() any
}{
	"Deployment":     {"apps/v1", func() any { return &appsv1.Deployment{} }},
	"Service":        {"v1", func() any { return &corev1.Service{} }},
	"ConfigMap":      {"v1", func() any { return &corev1.ConfigMap{} }},
	"Secret":         {"v1", func() any { return &corev1.Secret{} }},
	"ServiceMonitor": {"monitoring.coreos.com/v1", func() any { return &monitoringv1.ServiceMonitor{} }},
	"Probe":          {"monitoring.coreos.com/v1", func() any { return &monitoringv1.Probe{} }},
}

// manifests are the decoded resources of deploy/kubernetes.
type manifests struct {
	deployment     *appsv1.Deployment
	service        *corev1.Service
	configMap      *corev1.ConfigMap
	secret         *corev1.Secret
	serviceMonitor *monitoringv1.ServiceMonitor
	probe          *monitoringv1.Probe
}

var documentSeparator = regexp.MustCompile(`(?m)^---`)

// decodeStrict decodes raw, one YAML document, into obj as the API server's
// strict field validation does: YAML to JSON, then JSON with case-sensitive
// field names (encoding/json, and so yaml.UnmarshalStrict, would take
// readOnlyRootFileSystem for readOnlyRootFilesystem). A field the API type
// does not have, a duplicate field or a malformed value (a quantity, a port)
// is an error, where kubectl would drop it or fail.
func decodeStrict(raw []byte, obj any) error {
	if n := len(documentSeparator.FindAll(raw, -1)); n > 0 {
		return fmt.Errorf("%d document separators: one resource per file", n)
	}
	j, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return fmt.Errorf("converting to JSON: %w", err)
	}
	strict, err := k8sjson.UnmarshalStrict(j, obj, k8sjson.DisallowDuplicateFields, k8sjson.DisallowUnknownFields)
	if err != nil {
		return fmt.Errorf("decoding into %T: %w", obj, err)
	}
	return errors.Join(strict...)
}

// decodeFile reads path and decodes it strictly into the type of its kind,
// which must be want (any kind of kinds when want is "").
func decodeFile(t *testing.T, path, want string) any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	k, ok := kinds[tm.Kind]
	if !ok || (want != "" && tm.Kind != want) {
		t.Fatalf("%s: kind %q is not one deploy/kubernetes ships (want %q)", path, tm.Kind, want)
	}
	if tm.APIVersion != k.apiVersion {
		t.Fatalf("%s: apiVersion %q, want %q for a %s", path, tm.APIVersion, k.apiVersion, tm.Kind)
	}
	obj := k.new()
	if err := decodeStrict(raw, obj); err != nil {
		t.Fatalf("%s does not decode strictly into %T: %v", path, obj, err)
	}
	return obj
}

// loadManifests decodes every file of deploy/kubernetes; each kind of kinds
// must be there exactly once.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(manifestDir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", manifestDir, err)
	}
	var m manifests
	seen := map[string]string{}
	for _, f := range files {
		if filepath.Ext(f) != ".yaml" {
			t.Fatalf("%s: the manifests are .yaml files", f)
		}
		obj := decodeFile(t, f, "")
		var kind string
		switch o := obj.(type) {
		case *appsv1.Deployment:
			kind, m.deployment = "Deployment", o
		case *corev1.Service:
			kind, m.service = "Service", o
		case *corev1.ConfigMap:
			kind, m.configMap = "ConfigMap", o
		case *corev1.Secret:
			kind, m.secret = "Secret", o
		case *monitoringv1.ServiceMonitor:
			kind, m.serviceMonitor = "ServiceMonitor", o
		case *monitoringv1.Probe:
			kind, m.probe = "Probe", o
		}
		if prev, dup := seen[kind]; dup {
			t.Fatalf("%s and %s are both a %s", prev, f, kind)
		}
		seen[kind] = f
	}
	for kind := range kinds {
		if seen[kind] == "" {
			t.Fatalf("deploy/kubernetes has no %s", kind)
		}
	}
	return m
}

// image is what the Dockerfile says about the image the Deployment runs.
type image struct {
	uid, gid   int64
	port       int32
	entrypoint []string
}

// dockerfileImage reads USER, EXPOSE and ENTRYPOINT of ../Dockerfile.
func dockerfileImage(t *testing.T) image {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var img image
	for _, line := range strings.Split(string(raw), "\n") {
		instr, arg, _ := strings.Cut(line, " ")
		var err error
		switch instr {
		case "USER":
			_, err = fmt.Sscanf(arg, "%d:%d", &img.uid, &img.gid)
		case "EXPOSE":
			_, err = fmt.Sscanf(arg, "%d", &img.port)
		case "ENTRYPOINT":
			err = json.Unmarshal([]byte(arg), &img.entrypoint)
		}
		if err != nil {
			t.Fatalf("Dockerfile: %q: %v", line, err)
		}
	}
	if img.uid == 0 || img.port == 0 || len(img.entrypoint) == 0 {
		t.Fatalf("Dockerfile: USER %d, EXPOSE %d, ENTRYPOINT %q: want all three", img.uid, img.port, img.entrypoint)
	}
	return img
}

// configFile is the --config.file of the image's ENTRYPOINT.
func (img image) configFile(t *testing.T) string {
	t.Helper()
	for _, a := range img.entrypoint {
		if f, ok := strings.CutPrefix(a, "--config.file="); ok {
			return f
		}
	}
	t.Fatalf("the ENTRYPOINT %q names no --config.file", img.entrypoint)
	return ""
}

// container returns the pod's container called name.
func container(t *testing.T, d *appsv1.Deployment, name string) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == name {
			return c
		}
	}
	t.Fatalf("the Deployment has no container %q", name)
	return nil
}

// exporterContainer is the Deployment's smtp_exporter container.
func exporterContainer(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	return container(t, d, "smtp-exporter")
}

// volumeMount returns c's mount of volume, failing when there is none.
func volumeMount(t *testing.T, c *corev1.Container, volume string) corev1.VolumeMount {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m
		}
	}
	t.Fatalf("container %s does not mount volume %q", c.Name, volume)
	return corev1.VolumeMount{}
}

// volume returns the pod's volume called name.
func volume(t *testing.T, d *appsv1.Deployment, name string) corev1.Volume {
	t.Helper()
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("the Deployment has no volume %q", name)
	return corev1.Volume{}
}

// TestStrictDecodingRejectsMistakes: the decoding the other tests rely on
// refuses what kubectl would silently drop or reject.
func TestStrictDecodingRejectsMistakes(t *testing.T) {
	for _, tc := range []struct{ name, yaml string }{
		{"misspelt field", "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: x\n          securityContext: {readOnlyRootFileSystem: true}\n"},
		{"field of another kind", "apiVersion: v1\nkind: Service\nspec:\n  replicas: 1\n"},
		{"duplicate field", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nmetadata: {name: b}\n"},
		{"bad quantity", "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: x\n          resources: {limits: {memory: lots}}\n"},
		{"two documents", "apiVersion: v1\nkind: Service\n---\napiVersion: v1\nkind: Service\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(tc.yaml), &tm); err != nil {
				t.Fatal(err)
			}
			obj := kinds[tm.Kind].new()
			if err := decodeStrict([]byte(tc.yaml), obj); err == nil {
				t.Errorf("decoded into %T without an error", obj)
			}
		})
	}
}

// TestDeploymentHardened: the pod runs as the image's non-root user on a
// read-only root filesystem with no capabilities, every container has
// resources, and the exporter is probed on /-/healthy and /-/ready.
func TestDeploymentHardened(t *testing.T) {
	m := loadManifests(t)
	img := dockerfileImage(t)
	d := m.deployment
	pod := d.Spec.Template.Spec
	if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("the Deployment's selector %v does not select its pods %v (%v)", d.Spec.Selector, d.Spec.Template.Labels, err)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || psc.RunAsGroup == nil || psc.FSGroup == nil {
		t.Fatalf("the pod's securityContext %+v must set runAsNonRoot, runAsUser, runAsGroup and fsGroup", psc)
	}
	if *psc.RunAsUser != img.uid || *psc.RunAsGroup != img.gid || *psc.FSGroup != img.gid {
		t.Errorf("the pod runs as %d:%d (fsGroup %d), the image's USER is %d:%d", *psc.RunAsUser, *psc.RunAsGroup, *psc.FSGroup, img.uid, img.gid)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("the pod's seccompProfile is %v, want RuntimeDefault", psc.SeccompProfile)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it never uses")
	}
	for _, c := range pod.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("container %s: securityContext %+v, want no privilege escalation, read-only root, non-root, capabilities dropped", c.Name, sc)
		}
		if sc != nil && sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s is privileged", c.Name)
		}
		r := c.Resources
		if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
			t.Errorf("container %s: resources %v, want cpu and memory requests and a memory limit", c.Name, r)
		}
		if r.Limits.Memory().Cmp(*r.Requests.Memory()) < 0 {
			t.Errorf("container %s: memory limit %s below its request %s", c.Name, r.Limits.Memory(), r.Requests.Memory())
		}
	}

	c := exporterContainer(t, d)
	var http *corev1.ContainerPort
	for i := range c.Ports {
		if c.Ports[i].Name == "http" {
			http = &c.Ports[i]
		}
	}
	if http == nil || http.ContainerPort != img.port {
		t.Fatalf("container %s: ports %v, want one named http on %d (the Dockerfile's EXPOSE)", c.Name, c.Ports, img.port)
	}
	if want := fmt.Sprintf("--web.listen-address=:%d", img.port); !slices.Contains(c.Args, want) {
		t.Errorf("container %s: args %q, want %s", c.Name, c.Args, want)
	}
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/-/healthy"}, {"readiness", c.ReadinessProbe, "/-/ready"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("container %s: no %s probe over HTTP", c.Name, p.kind)
			continue
		}
		if g := p.probe.HTTPGet; g.Path != p.path || g.Port.String() != http.Name {
			t.Errorf("container %s: %s probe on %s port %s, want %s on port %s", c.Name, p.kind, g.Path, g.Port.String(), p.path, http.Name)
		}
	}
}

// TestConfigReloadAndSecrets: the ConfigMap is mounted as a directory (so
// the kubelet updates it) where the image's --config.file is, the reloader
// sidecar watches that directory and POSTs the exporter's /-/reload, and
// the Secret is readable by the pod's group and nobody else.
func TestConfigReloadAndSecrets(t *testing.T) {
	m := loadManifests(t)
	img := dockerfileImage(t)
	d := m.deployment
	c := exporterContainer(t, d)
	configFile := img.configFile(t)

	cv := volume(t, d, "config")
	if cv.ConfigMap == nil || cv.ConfigMap.Name != m.configMap.Name {
		t.Fatalf("volume config is %+v, want the ConfigMap %s", cv.VolumeSource, m.configMap.Name)
	}
	if _, ok := m.configMap.Data[filepath.Base(configFile)]; !ok {
		t.Errorf("the ConfigMap has no key %s, the file the image's --config.file names", filepath.Base(configFile))
	}
	for _, name := range []string{c.Name, "config-reloader"} {
		mnt := volumeMount(t, container(t, d, name), "config")
		if mnt.MountPath != filepath.Dir(configFile) || mnt.SubPath != "" || !mnt.ReadOnly {
			t.Errorf("container %s mounts the config at %s (subPath %q, read-only %t), want read-only %s without subPath (the kubelet never updates a subPath)",
				name, mnt.MountPath, mnt.SubPath, mnt.ReadOnly, filepath.Dir(configFile))
		}
	}
	reloader := container(t, d, "config-reloader")
	for _, want := range []string{"--watched-dir=" + filepath.Dir(configFile), fmt.Sprintf("--reload-url=http://127.0.0.1:%d/-/reload", img.port)} {
		if !slices.Contains(reloader.Args, want) {
			t.Errorf("config-reloader args %q, want %s", reloader.Args, want)
		}
	}

	sv := volume(t, d, "passwords")
	if sv.Secret == nil || sv.Secret.SecretName != m.secret.Name {
		t.Fatalf("volume passwords is %+v, want the Secret %s", sv.VolumeSource, m.secret.Name)
	}
	if mode := sv.Secret.DefaultMode; mode == nil {
		t.Error("the Secret's files have the default mode 0644: want them readable by the pod's fsGroup and not by others")
	} else if *mode&0o040 == 0 || *mode&0o007 != 0 {
		t.Errorf("the Secret's files have mode %#o: want them readable by the pod's fsGroup and not by others", *mode)
	}
	if mnt := volumeMount(t, c, "passwords"); !mnt.ReadOnly {
		t.Error("the Secret is mounted read-write")
	}
}

// TestConfigMapPassesConfigCheck: the ConfigMap's config passes the
// exporter's own --config.check, run on a copy of the pod's files: the
// config where the image reads it and the Secret's keys where the pod
// mounts them (so a password_file that the Secret does not provide fails),
// and every module a Probe names is in it.
func TestConfigMapPassesConfigCheck(t *testing.T) {
	m := loadManifests(t)
	img := dockerfileImage(t)
	c := exporterContainer(t, m.deployment)
	secretDir := volumeMount(t, c, "passwords").MountPath
	config := m.configMap.Data[filepath.Base(img.configFile(t))]

	root := t.TempDir()
	files := map[string][]byte{}
	for k, v := range m.secret.Data {
		files[k] = v
	}
	for k, v := range m.secret.StringData {
		files[k] = []byte(v)
	}
	if len(files) == 0 {
		t.Fatal("the Secret holds no password file")
	}
	for k, v := range files {
		path := filepath.Join(root, secretDir, k)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	uses := regexp.MustCompile(`(?m)^\s*password_file:\s*(\S+)\s*$`).FindAllStringSubmatch(config, -1)
	if len(uses) == 0 {
		t.Error("the config reads no password_file: the Secret is not used")
	}
	for _, u := range uses {
		if filepath.Dir(u[1]) != secretDir {
			t.Errorf("password_file %s is not in the Secret's mount %s", u[1], secretDir)
		}
	}
	configPath := filepath.Join(root, img.configFile(t))
	if err := os.MkdirAll(filepath.Dir(configPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(configPath, []byte(strings.ReplaceAll(config, secretDir+"/", filepath.Join(root, secretDir)+"/")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(buildExporter(t), "--config.file="+configPath, "--config.check").CombinedOutput(); err != nil {
		t.Errorf("smtp_exporter --config.check on the ConfigMap's config: %v\n%s", err, out)
	}

	var parsed struct {
		Modules map[string]any `json:"modules"`
	}
	if err := yaml.Unmarshal([]byte(config), &parsed); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*monitoringv1.Probe{m.probe, decodeFile(t, operatorProbe, "Probe").(*monitoringv1.Probe)} {
		if _, ok := parsed.Modules[p.Spec.Module]; !ok {
			t.Errorf("Probe %s uses module %q, which the ConfigMap's config does not define", p.Name, p.Spec.Module)
		}
	}
}

// buildExporter builds the exporter of the enclosing module (..) into a
// temporary directory.
func buildExporter(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "smtp_exporter")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the exporter: %v\n%s", err, out)
	}
	return bin
}

// operatorProbe is the Probe of the Prometheus examples, which must point at
// the same Service.
var operatorProbe = filepath.Join("..", "prometheus", "probe-operator.yaml")

// TestMonitoringPointsAtService: the Service selects the Deployment's pods
// on the exporter's port; the ServiceMonitor selects the Service and
// scrapes /metrics on a port it has; both Probes (this directory's and
// prometheus/probe-operator.yaml) send their targets to the Service's
// /probe and label them with target and module.
func TestMonitoringPointsAtService(t *testing.T) {
	m := loadManifests(t)
	svc, d := m.service, m.deployment
	c := exporterContainer(t, d)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) || len(svc.Spec.Selector) == 0 {
		t.Errorf("the Service's selector %v does not select the pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("the Service has ports %v, want one", svc.Spec.Ports)
	}
	port := svc.Spec.Ports[0]
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
		return p.Name == port.TargetPort.String() && p.ContainerPort == port.Port
	}) {
		t.Errorf("the Service's port %d targets %s, not a port of container %s (%v) on the same number", port.Port, port.TargetPort.String(), c.Name, c.Ports)
	}
	for _, obj := range []metav1.ObjectMeta{d.ObjectMeta, m.configMap.ObjectMeta, m.secret.ObjectMeta, m.serviceMonitor.ObjectMeta, m.probe.ObjectMeta} {
		if obj.Namespace != svc.Namespace {
			t.Errorf("%s is in namespace %q, the Service in %q", obj.Name, obj.Namespace, svc.Namespace)
		}
	}

	sm := m.serviceMonitor.Spec
	if sel, err := metav1.LabelSelectorAsSelector(&sm.Selector); err != nil || sel.Empty() || !sel.Matches(labels.Set(svc.Labels)) {
		t.Errorf("the ServiceMonitor's selector %v does not select the Service's labels %v (%v)", sm.Selector, svc.Labels, err)
	}
	if len(sm.Endpoints) != 1 || sm.Endpoints[0].Port != port.Name || sm.Endpoints[0].Path != "/metrics" {
		t.Errorf("the ServiceMonitor scrapes %+v, want /metrics on port %s", sm.Endpoints, port.Name)
	}

	prober := fmt.Sprintf("%s.%s.svc:%d", svc.Name, svc.Namespace, port.Port)
	for _, p := range []*monitoringv1.Probe{m.probe, decodeFile(t, operatorProbe, "Probe").(*monitoringv1.Probe)} {
		if p.Spec.ProberSpec.URL != prober || p.Spec.ProberSpec.Path != "/probe" {
			t.Errorf("Probe %s sends its targets to %s%s, want %s/probe", p.Name, p.Spec.ProberSpec.URL, p.Spec.ProberSpec.Path, prober)
		}
		st := p.Spec.Targets.StaticConfig
		if st == nil || len(st.Targets) == 0 {
			t.Errorf("Probe %s has no static targets", p.Name)
			continue
		}
		for label, from := range map[string]string{"target": "__param_target", "module": "__param_module"} {
			if !slices.ContainsFunc(st.RelabelConfigs, func(r monitoringv1.RelabelConfig) bool {
				return r.TargetLabel == label && slices.Equal(r.SourceLabels, []monitoringv1.LabelName{monitoringv1.LabelName(from)})
			}) {
				t.Errorf("Probe %s does not set label %s from %s, which the alert rules and dashboard use", p.Name, label, from)
			}
		}
	}
}
