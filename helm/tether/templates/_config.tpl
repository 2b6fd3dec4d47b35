{{/*
tether.toml for one pod: dict "root" (the chart context), "pod" (pod name), "voter" (bool).
Every key is a real node config key (README "Configuration").
*/}}
{{- define "tether.toml" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
# Rendered by the tether Helm chart for pod {{ .pod }}. The environment adds
# TETHER_ADMIN_KEYS and TETHER_TENANTS (JSON, from a Secret) and TETHER_LOG.
[node]
# node id = trailing pod ordinal + 1
id_from_hostname = true
region = {{ $v.region | toJson }}
data_dir = "/var/lib/tether"

[listen]
client = {{ printf "%s:%d" $v.listenHost (int $v.ports.client) | toJson }}
admin = {{ printf "%s:%d" $v.listenHost (int $v.ports.admin) | toJson }}
peer = {{ printf "%s:%d" $v.listenHost (int $v.ports.peer) | toJson }}
{{- with $v.trustedProxies }}
trusted_proxies = {{ toJson . }}
{{- end }}
{{- if $v.proxyProtocol }}
proxy_protocol = true
{{- end }}

[cluster]
join = {{ include "tether.join" $root }}
advertise = {{ printf "%s.%s:%d" .pod (include "tether.peerDomain" $root) (int $v.ports.peer) | toJson }}
voter = {{ .voter }}
timing = {{ $v.timingProfile | toJson }}
{{- if $v.cluster.insecurePeer }}
insecure_peer = true
{{- end }}
{{- with $v.cluster.isolationLeaseMs }}
isolation_lease_ms = {{ int64 . }}
{{- end }}
{{- with $v.cluster.isolationGraceMs }}
isolation_grace_ms = {{ int64 . }}
{{- end }}
{{- $peerMode := include "tether.peerMode" $root }}
{{- if or $peerMode $v.tls.client.enabled $v.tls.admin.enabled }}

[tls]
{{- /* Certificate files are reloaded when they change (a renewed Secret), no restart. */}}
{{- if $v.tls.client.enabled }}
client_cert = "/etc/tether-tls/client/tls.crt"
client_key = "/etc/tether-tls/client/tls.key"
{{- end }}
{{- if $v.tls.admin.enabled }}
admin_cert = "/etc/tether-tls/admin/tls.crt"
admin_key = "/etc/tether-tls/admin/tls.key"
{{- if include "tether.adminClientCA" $root }}
admin_client_ca = "/etc/tether-tls/admin/client-ca.crt"
{{- end }}
{{- end }}
{{- if eq $peerMode "perNode" }}
peer_ca = "/etc/tether-tls/peer/ca.crt"
# The node replaces {node_id} with its id: each pod reads its own certificate.
peer_cert = "/etc/tether-tls/peer/{node_id}/tls.crt"
peer_key = "/etc/tether-tls/peer/{node_id}/tls.key"
{{- else if eq $peerMode "shared" }}
{{- include "tether.peerCheckShared" $root }}
peer_ca = "/etc/tether-tls/peer/ca.crt"
peer_cert = "/etc/tether-tls/peer/tls.crt"
peer_key = "/etc/tether-tls/peer/tls.key"
{{- end }}
{{- if and $peerMode $v.tls.peer.allowMissingNodeId }}
peer_allow_missing_node_id = true
{{- end }}
{{- end }}
{{- range $section := list "auth" "limits" "session" "raft" }}
{{- $keys := get $v.config $section }}
{{- if or $keys (eq $section "session") }}

[{{ $section }}]
{{- if eq $section "session" }}
{{- /* The node's drain window is the chart's: terminationGracePeriodSeconds is sized from it. */}}
drain_secs = {{ int $v.drain.windowSeconds }}
{{- end }}
{{- if $keys }}
{{- range $k, $val := $keys }}
{{ $k }} = {{ include "tether.tomlValue" $val }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}
