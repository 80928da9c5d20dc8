package recipes

import (
	"reflect"
)

// Vars are the values of the references that do not come from config.
type Vars struct {
	DeviceID   string // ${device.id}; "" gives ""
	WorkDir    string // ${component.work_dir}: the writable work/<name>/ folder
	VersionDir string // ${component.version_dir}: the components/<name>/<version>/ folder
}

// Render returns a deep copy of the recipe with every ${…} resolved in the
// fields that are interpolated: lifecycle.run command, script, args, env
// values and health check, the install and shutdown scripts, and the plugin's
// command, args and mapping labels. "$${" becomes a literal "${". Other
// fields are copied unchanged. config is the effective configuration (see
// EffectiveConfig); the recipe's own defaults fill any key it lacks, found
// by looking beneath config rather than by merging it again. An unknown
// reference, or one to a table or array, is an ErrorList entry naming the
// field; then the result is nil. The receiver is not modified.
func (r *Recipe) Render(config map[string]any, v Vars) (*Recipe, error) {
	out := deepCopy(r)
	res := &resolver{
		config: []map[string]any{r.Config.Defaults, config},
		values: map[string]string{
			"component.name":        r.Metadata.Name,
			"component.version":     r.Metadata.Version,
			"component.work_dir":    v.WorkDir,
			"component.version_dir": v.VersionDir,
			"device.id":             v.DeviceID,
		},
	}
	c := newCollector()
	expand := func(path string, s *string) {
		got, err := Interpolate(*s, res.lookup)
		if err != nil {
			c.addAt(r.Source, 0, 0, path, res.message(err))
			return
		}
		*s = got
	}
	lc := &out.Lifecycle
	if lc.Install != nil {
		expand("lifecycle.install.script", &lc.Install.Script)
	}
	if lc.Shutdown != nil {
		expand("lifecycle.shutdown.script", &lc.Shutdown.Script)
	}
	if run := lc.Run; run != nil {
		const p = "lifecycle.run"
		expand(p+".command", &run.Command)
		expand(p+".script", &run.Script)
		for i := range run.Args {
			expand(indexPath(p+".args", i), &run.Args[i])
		}
		for _, k := range sortedKeys(run.Env) {
			s := run.Env[k]
			expand(joinKey(p+".env", k), &s)
			run.Env[k] = s
		}
		if h := run.Health; h != nil {
			before := len(c.list)
			expand(p+".health.check", &h.Check)
			if len(c.list) == before {
				if msg := checkHealthCheck(h.Check); msg != "" {
					c.addAt(r.Source, 0, 0, p+".health.check", msg)
				}
			}
		}
	}
	if pl := out.Plugin; pl != nil {
		expand("plugin.command", &pl.Command)
		for i := range pl.Args {
			expand(indexPath("plugin.args", i), &pl.Args[i])
		}
		for _, k := range sortedKeys(pl.Mapping.Labels) {
			s := pl.Mapping.Labels[k]
			expand(joinKey("plugin.mapping.labels", k), &s)
			pl.Mapping.Labels[k] = s
		}
	}
	if err := c.result(); err != nil {
		return nil, err
	}
	return out, nil
}

// deepCopy copies a value and everything it points to. Values inside
// interfaces (config trees) are copied as generic TOML values.
func deepCopy[T any](v *T) *T {
	out := new(T)
	copyReflect(reflect.ValueOf(out).Elem(), reflect.ValueOf(v).Elem())
	return out
}

func copyReflect(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if !src.IsNil() {
			dst.Set(reflect.New(src.Type().Elem()))
			copyReflect(dst.Elem(), src.Elem())
		}
	case reflect.Struct:
		for i := range src.NumField() {
			if dst.Field(i).CanSet() {
				copyReflect(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Slice:
		if !src.IsNil() {
			dst.Set(reflect.MakeSlice(src.Type(), src.Len(), src.Len()))
			for i := range src.Len() {
				copyReflect(dst.Index(i), src.Index(i))
			}
		}
	case reflect.Map:
		if !src.IsNil() {
			dst.Set(reflect.MakeMapWithSize(src.Type(), src.Len()))
			it := src.MapRange()
			for it.Next() {
				e := reflect.New(src.Type().Elem()).Elem()
				copyReflect(e, it.Value())
				dst.SetMapIndex(it.Key(), e)
			}
		}
	case reflect.Interface:
		if !src.IsNil() {
			dst.Set(reflect.ValueOf(copyValue(src.Interface())))
		}
	default:
		dst.Set(src)
	}
}
