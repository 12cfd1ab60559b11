package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Environment variables read by Load. ORPROXY_NO_BROWSER is a switch
// (1/true/yes) that turns login.open_browser off.
const (
	EnvConfig          = "ORPROXY_CONFIG"
	EnvListen          = "ORPROXY_LISTEN"
	EnvUpstream        = "ORPROXY_UPSTREAM"
	EnvBrokerURL       = "ORPROXY_BROKER_URL"
	EnvCredentialsFile = "ORPROXY_CREDENTIALS_FILE"
	EnvAccessToken     = "ORPROXY_ACCESS_TOKEN"
	EnvNoBrowser       = "ORPROXY_NO_BROWSER"
)

// envKeys maps each value-carrying environment variable to its config key.
var envKeys = []struct{ env, key string }{
	{EnvListen, "listen"},
	{EnvUpstream, "upstream"},
	{EnvBrokerURL, "broker.url"},
	{EnvCredentialsFile, "credentials.file"},
	{EnvAccessToken, "access_token"},
}

// Options says where Load looks. The zero value reads the real environment and
// the default config file.
type Options struct {
	// File is the --config flag; empty falls back to ORPROXY_CONFIG, then to
	// the default path, which may be absent.
	File string
	// Flags are values given on the command line, by config key
	// ("listen", "broker.url", "login.open_browser").
	Flags map[string]string
	// FlagNames name the flag that gave each key of Flags as the user typed
	// it ("--listen"), for messages and Source; a key without one is
	// called "the command line".
	FlagNames map[string]string
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

// Loaded is a loaded configuration and where it came from.
type Loaded struct {
	Config
	// File is the config file that was read, or "" when none was.
	File string
	// FileExplicit is true when the file was named by --config or ORPROXY_CONFIG.
	FileExplicit bool
	// sources holds, per dotted key, the layer that set it last; a key not
	// in it has its default.
	sources map[string]Source
}

// Error lists every problem found while loading, so a user fixes them in one go.
type Error struct {
	Problems []string
	// InCommandLine says a value given by a flag is among the problems:
	// the command line itself is wrong, which is a usage error.
	InCommandLine bool
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return "config: " + e.Problems[0]
	}
	return "config has " + strconv.Itoa(len(e.Problems)) + " problems:\n  - " + strings.Join(e.Problems, "\n  - ")
}

// Load builds the configuration: defaults, then the file, then the
// environment, then flags. It validates the result and reports every problem.
func Load(opts Options) (*Loaded, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	out := &Loaded{Config: Default(), sources: map[string]Source{}}
	var problems []string
	inCommandLine := false

	path, explicit, _ := FilePath(opts.File, getenv)
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			out.File, out.FileExplicit = path, explicit
			fileProblems, lines := decodeFile(&out.Config, path, data)
			problems = append(problems, fileProblems...)
			for k, line := range lines {
				out.sources[k] = Source{Layer: LayerFile, Where: fmt.Sprintf("%s:%d", path, line)}
			}
			// A relative file named in the file is relative to the file,
			// not to wherever the daemon happens to start (/ under launchd).
			for _, f := range []*string{&out.Credentials.File, &out.Usage.File} {
				if *f != "" && !filepath.IsAbs(*f) && !strings.HasPrefix(*f, "~") {
					*f = filepath.Join(filepath.Dir(path), *f)
				}
			}
		case errors.Is(err, fs.ErrNotExist) && !explicit:
			// No file at the default path: defaults, environment and flags only.
		case errors.Is(err, fs.ErrNotExist):
			return nil, &Error{Problems: []string{fmt.Sprintf("config file %s does not exist (check --config or %s, or create it with `orproxy config init`)", path, EnvConfig)}}
		default:
			return nil, &Error{Problems: []string{fmt.Sprintf("cannot read config file %s: %v", path, err)}}
		}
	}

	for _, ek := range envKeys {
		if v := getenv(ek.env); v != "" {
			out.sources[ek.key] = Source{Layer: LayerEnv, Where: ek.env}
			if err := setKey(&out.Config, ek.key, v); err != nil {
				problems = append(problems, fmt.Sprintf("%s (from %s): %v", ek.key, ek.env, err))
			}
		}
	}
	if v := getenv(EnvNoBrowser); v != "" {
		on, err := parseBool(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", EnvNoBrowser, err))
		} else if on {
			out.Login.OpenBrowser = false
			out.sources["login.open_browser"] = Source{Layer: LayerEnv, Where: EnvNoBrowser}
		}
	}

	keys := make([]string, 0, len(opts.Flags))
	for k := range opts.Flags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		src := Source{Layer: LayerFlag, Where: opts.FlagNames[k]}
		out.sources[k] = src
		if err := setKey(&out.Config, k, opts.Flags[k]); err != nil {
			problems = append(problems, fmt.Sprintf("%s (from %s): %v", k, src.where(), err))
			inCommandLine = true
		}
	}

	// The daemon and the commands must name the same files whatever
	// their working directory: ~ expanded, and made absolute.
	for _, f := range []*string{&out.Credentials.File, &out.Usage.File} {
		*f = expandHome(*f)
		if *f != "" && !filepath.IsAbs(*f) {
			if abs, err := filepath.Abs(*f); err == nil {
				*f = abs
			}
		}
	}

	for _, p := range out.validate() {
		base, _, _ := strings.Cut(p.key, "[")
		src, set := out.sources[base]
		switch {
		case !set:
			problems = append(problems, p.key+": "+p.msg)
		case src.Layer == LayerFile:
			problems = append(problems, fmt.Sprintf("%s: %s: %s", src.Where, p.key, p.msg))
		default:
			problems = append(problems, fmt.Sprintf("%s (from %s): %s", p.key, src.where(), p.msg))
			inCommandLine = inCommandLine || src.Layer == LayerFlag
		}
	}
	if len(problems) > 0 {
		return nil, &Error{Problems: problems, InCommandLine: inCommandLine}
	}
	return out, nil
}

// Decode reads a YAML document into the defaults, strictly. It is Load without
// the environment and flags, for tests and tools that check a file.
func Decode(name string, data []byte) (Config, error) {
	c := Default()
	if problems, _ := decodeFile(&c, name, data); len(problems) > 0 {
		return c, &Error{Problems: problems}
	}
	return c, nil
}

// decodeFile applies the file to c and returns its problems and the line of
// each key it set.
func decodeFile(c *Config, path string, data []byte) ([]string, map[string]int) {
	var doc yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // empty or comment-only file: all defaults
		}
		return []string{fmt.Sprintf("%s: %v", path, err)}, nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return []string{fmt.Sprintf("%s: holds more than one YAML document; keep one", path)}, nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	d := decoder{path: path, lines: map[string]int{}}
	d.mapping(root, reflect.ValueOf(c).Elem(), "")
	return d.problems, d.lines
}

// decoder walks the YAML tree against the Config struct, so errors carry the
// full key ("broker.timeout") and the line, which yaml's own errors do not.
type decoder struct {
	path     string
	problems []string
	lines    map[string]int
}

func (d *decoder) fail(n *yaml.Node, key, format string, args ...any) {
	where := d.path
	if n != nil {
		where = fmt.Sprintf("%s:%d", d.path, n.Line)
	}
	msg := fmt.Sprintf(format, args...)
	if key != "" {
		msg = key + ": " + msg
	}
	d.problems = append(d.problems, where+": "+msg)
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, prefix string) {
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode {
		name := prefix
		if name == "" {
			d.fail(n, "", "the file must be a mapping of keys to values (listen: …, upstream: …)")
			return
		}
		d.fail(n, name, "must be a mapping with keys %s", strings.Join(fieldKeys(v.Type()), ", "))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], resolveAlias(n.Content[i+1])
		key := kn.Value
		full := key
		if prefix != "" {
			full = prefix + "." + key
		}
		if seen[key] {
			d.fail(kn, full, "appears twice; keep one")
			continue
		}
		seen[key] = true
		field, ok := fieldByKey(v, key)
		if !ok {
			d.fail(kn, full, "unknown key (allowed here: %s)", strings.Join(fieldKeys(v.Type()), ", "))
			continue
		}
		if vn.Kind == yaml.ScalarNode && vn.Tag == "!!null" {
			continue // "key:" with no value keeps the default
		}
		d.lines[full] = vn.Line
		if field.Kind() == reflect.Struct {
			d.mapping(vn, field, full)
			continue
		}
		if field.Kind() == reflect.Slice {
			d.list(vn, field, full)
			continue
		}
		if vn.Kind != yaml.ScalarNode {
			d.fail(vn, full, "must be a single value, not a %s", nodeKindName(vn))
			continue
		}
		if err := setScalar(field, vn.Value); err != nil {
			d.fail(vn, full, "%v", err)
		}
	}
}

func (d *decoder) list(n *yaml.Node, field reflect.Value, key string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, key, "must be a list, like [a, b]")
		return
	}
	items := make([]string, 0, len(n.Content))
	for _, item := range n.Content {
		item = resolveAlias(item)
		if item.Kind != yaml.ScalarNode {
			d.fail(item, key, "list items must be strings")
			continue
		}
		items = append(items, item.Value)
	}
	field.Set(reflect.ValueOf(items))
}

func nodeKindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "value"
	}
}

func fieldByKey(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		if yamlKey(t.Field(i)) == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func fieldKeys(t reflect.Type) []string {
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		keys = append(keys, yamlKey(t.Field(i)))
	}
	return keys
}

// Keys lists every leaf key of the config in dotted form ("broker.timeout").
func Keys() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			k := prefix + yamlKey(f)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, k+".")
				continue
			}
			out = append(out, k)
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return out
}

// setKey sets one dotted key from a string, as flags and the environment give it.
func setKey(c *Config, key, value string) error {
	v := reflect.ValueOf(c).Elem()
	for _, part := range strings.Split(key, ".") {
		if v.Kind() != reflect.Struct {
			return fmt.Errorf("unknown key")
		}
		f, ok := fieldByKey(v, part)
		if !ok {
			return fmt.Errorf("unknown key")
		}
		v = f
	}
	if v.Kind() == reflect.Slice {
		var items []string
		for _, s := range strings.Split(value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		v.Set(reflect.ValueOf(append([]string{}, items...)))
		return nil
	}
	return setScalar(v, value)
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	byteSizeType = reflect.TypeOf(ByteSize(0))
)

func setScalar(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case v.Type() == byteSizeType:
		b, err := ParseByteSize(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(b))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		v.SetInt(int64(n))
	default:
		return fmt.Errorf("cannot be set from text")
	}
	return nil
}

// ParseDuration reads a duration as Go writes it (500ms, 10s, 5m, 24h) or
// in whole days (400d), the unit retention and --since are thought of in.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(t, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 && n <= 100*365 {
			return time.Duration(n) * Day, nil
		}
	} else if d, err := time.ParseDuration(t); err == nil {
		return d, nil
	}
	return 0, fmt.Errorf("%q is not a duration (use a number with a unit: 500ms, 10s, 5m, 24h, 30d)", s)
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", s)
}

// FilePath is the config file orproxy reads: flag (--config), else
// ORPROXY_CONFIG, else config.yaml in Dir, with a leading "~/" expanded.
// explicit says the user named the file. Without a flag or variable and no
// config directory, it returns the error of Dir.
func FilePath(flag string, getenv func(string) string) (path string, explicit bool, err error) {
	switch {
	case flag != "":
		return expandHome(flag), true, nil
	case getenv != nil && getenv(EnvConfig) != "":
		return expandHome(getenv(EnvConfig)), true, nil
	}
	dir, err := Dir()
	if err != nil {
		return "", false, err
	}
	return filepath.Join(dir, "config.yaml"), false, nil
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	return p
}
