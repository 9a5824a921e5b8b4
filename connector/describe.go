package connector

import "sort"

// RegistryInfo describes one configured registry, for pages that show
// what berth serves. It holds no credentials.
type RegistryInfo struct {
	Name   string
	Type   string // TypeHosted, TypeCache or TypeVirtual
	Prefix string
	// Upstream is a cache's upstream URL as configured.
	Upstream string
	// Members and PushTo are a virtual registry's.
	Members []string
	PushTo  string
}

// Registries returns the configured registries, by name.
func (c *Connector) Registries() []RegistryInfo {
	out := make([]RegistryInfo, 0, len(c.entries))
	for _, e := range c.entries {
		ri := RegistryInfo{Name: e.name, Type: e.typ, Prefix: e.prefix}
		if e.cache != nil {
			ri.Upstream = e.cache.up.name
		}
		for _, m := range e.member {
			ri.Members = append(ri.Members, m.name)
		}
		if e.pushTo != nil {
			ri.PushTo = e.pushTo.name
		}
		out = append(out, ri)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Owner returns the configured registry a repository name belongs to and
// its type; for a name of the implicit hosted registry, "" and
// TypeHosted.
func (c *Connector) Owner(name string) (registryName, typ string) {
	e := c.owner(name)
	if e == nil {
		return "", TypeHosted
	}
	return e.name, e.typ
}

// StoredNames returns the stored repositories whose content a read of
// name may serve, in the order reads try them: the name itself for hosted
// and cached names, and a virtual name's counterparts in its members.
func (c *Connector) StoredNames(name string) []string {
	e := c.owner(name)
	if e == nil || e.typ != TypeVirtual {
		return []string{name}
	}
	v := c.virtualRepository(e, name)
	out := make([]string, 0, len(v.ms))
	for _, m := range v.ms {
		out = append(out, m.name)
	}
	return out
}
