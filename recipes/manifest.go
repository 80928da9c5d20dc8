package recipes

import "fmt"

// ParseManifestFile reads and validates a deployment manifest.
// On failure the error is an ErrorList naming every problem, or an error
// saying the file could not be read.
func ParseManifestFile(path string) (*Manifest, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return ParseManifest(path, data)
}

// ParseManifest parses a deployment manifest from data; name is used in
// errors and in Source. It is as strict as ParseRecipe: unknown keys, wrong
// types and bad values are all reported together in an ErrorList.
func ParseManifest(name string, data []byte) (*Manifest, error) {
	c := newCollector()
	c.noteFile(name)
	doc, synErr := parseDocument(name, data)
	if synErr != nil {
		c.list = append(c.list, synErr)
		return nil, c.result()
	}
	c.docs = []*document{doc}
	m := &Manifest{}
	decode(doc.tree, m, func(path, msg string) {
		c.addIn(doc, path, msg)
		c.bad[path] = true
	})
	applyManifestDefaults(m, doc.tree)
	validateManifest(c, m, doc.tree)
	if err := c.result(); err != nil {
		return nil, err
	}
	m.Source, m.positions = name, doc.pos
	return m, nil
}

// Marshal writes the manifest as TOML, defaults included; parsing the
// output gives an equal Manifest (Source aside).
func (m *Manifest) Marshal() ([]byte, error) {
	return marshalTOML("manifest", m)
}

func validateManifest(c *collector, m *Manifest, tree map[string]any) {
	switch {
	case !present(tree, "format"):
		c.add("format", "required; must be 1")
	case m.Format != 1:
		c.add("format", fmt.Sprintf("must be 1 (got %d)", m.Format))
	}
	d := m.Deployment
	if d.ID != "" && !deploymentIDRE.MatchString(d.ID) {
		c.add("deployment.id", fmt.Sprintf("%q must be 1 to 128 of A-Z a-z 0-9 . _ - (leave it out to have one generated)", d.ID))
	}
	if msg := oneOf(d.FailurePolicy, FailureRollback, FailureKeep); msg != "" {
		c.add("deployment.failure_policy", msg)
	}
	if d.HealthTimeout.Duration <= 0 {
		c.add("deployment.health_timeout", "must be more than 0s")
	}
	seen := map[string]int{}
	for i, ref := range m.Components {
		p := indexPath("components", i)
		if msg := checkComponentName(ref.Name); msg != "" {
			c.add(p+".name", msg)
		} else if j, ok := seen[ref.Name]; ok {
			c.add(p+".name", fmt.Sprintf("%q is already listed as components[%d]", ref.Name, j))
		} else {
			seen[ref.Name] = i
		}
		if ref.Version == "" {
			c.add(p+".version", "required")
		} else if msg := checkVersion(ref.Version); msg != "" {
			c.add(p+".version", msg+"; a deployment names exact versions, not ranges")
		}
		if ref.Recipe != "" {
			if msg := checkRelativeInside(ref.Recipe, "manifest's folder"); msg != "" {
				c.add(p+".recipe", msg)
			} else if hasReference(ref.Recipe) {
				c.add(p+".recipe", `"${…}" is not expanded here`)
			}
		}
	}
}

// Locate returns the line and column of a field of the manifest's file
// ("components[1].recipe"), or of its nearest ancestor written there;
// 0, 0 when unknown.
func (m *Manifest) Locate(path string) (line, col int) {
	if m.positions == nil {
		return 0, 0
	}
	at, _, _ := m.positions.find(path)
	return int(at.line), int(at.col)
}
