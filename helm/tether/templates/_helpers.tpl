{{/* Chart name. */}}
{{- define "tether.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified name, cut to 40 characters: pods are <fullname>-<ordinal> (ordinals can be
large with ordinalStart), and the revision-hash label on a pod must stay within 63.
*/}}
{{- define "tether.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tether.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tether.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tether.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tether.labels" -}}
helm.sh/chart: {{ include "tether.chart" . }}
{{ include "tether.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
tether.dev/region: {{ .Values.region | quote }}
{{- end -}}

{{- define "tether.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tether.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tether.peersName" -}}
{{- printf "%s-peers" (include "tether.fullname" .) -}}
{{- end -}}

{{/* DNS suffix pods advertise to peers. */}}
{{- define "tether.peerDomain" -}}
{{- if .Values.cluster.advertiseDomain -}}
{{- .Values.cluster.advertiseDomain -}}
{{- else -}}
{{- printf "%s.%s.svc.%s" (include "tether.peersName" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}
{{- end -}}

{{- define "tether.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Number of voter pods (checked against replicas). */}}
{{- define "tether.voters" -}}
{{- $v := int .Values.voters -}}
{{- $r := int .Values.replicas -}}
{{- if gt $v $r -}}
{{- fail (printf "voters (%d) cannot exceed replicas (%d)" $v $r) -}}
{{- end -}}
{{- $v -}}
{{- end -}}

{{/* Whether peer links are used at all: more than one node anywhere in the cluster. */}}
{{- define "tether.clustered" -}}
{{- if or (gt (int .Values.replicas) 1) (gt (len .Values.cluster.seeds) 0) -}}true{{- end -}}
{{- end -}}

{{/* Whether the pods use peer mTLS files: clustered, peer TLS on, not insecure. */}}
{{- define "tether.peerTLS" -}}
{{- if include "tether.clustered" . -}}
{{- if and .Values.tls.peer.enabled .Values.cluster.insecurePeer -}}
{{- fail "cluster.insecurePeer = true cannot be combined with tls.peer.enabled; disable one" -}}
{{- else if .Values.tls.peer.enabled -}}
true
{{- else if not .Values.cluster.insecurePeer -}}
{{- fail "a clustered release (replicas > 1 or cluster.seeds) needs tls.peer.enabled, or cluster.insecurePeer for dev/test" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
`[cluster] join` as a JSON list. Empty seeds: this release's first voter is the seed
(unless the release is a single node without peer links: then no join at all, the node
bootstraps alone).
*/}}
{{- define "tether.join" -}}
{{- if .Values.cluster.seeds -}}
{{- toJson .Values.cluster.seeds -}}
{{- else if not (include "tether.clustered" .) -}}
{{- "[]" -}}
{{- else if eq (include "tether.voters" .) "0" -}}
{{- fail "cluster.seeds is required when voters is 0: a release of learners only must join an existing cluster" -}}
{{- else -}}
{{- list (printf "%s-%d.%s:%d" (include "tether.fullname" .) (int .Values.ordinalStart) (include "tether.peerDomain" .) (int .Values.ports.peer)) | toJson -}}
{{- end -}}
{{- end -}}

{{/*
Where each pod's peer certificate comes from: "shared" (one Secret with ca.crt, tls.crt,
tls.key for every pod: tls.peer.existingSecret or inline PEM) or "perNode" (one Secret per
node id, <prefix>-<id>: tls.peer.existingSecretPrefix, the chart's cert-manager
Certificates, or Secrets you create under the default prefix). Empty without peer TLS.
*/}}
{{- define "tether.peerMode" -}}
{{- $p := .Values.tls.peer -}}
{{- if include "tether.peerTLS" . -}}
{{- if or $p.existingSecret (and (not $p.existingSecretPrefix) (not $p.certManager.enabled) $p.cert) -}}
shared
{{- else -}}
perNode
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Secret holding ca.crt / tls.crt / tls.key for a shared peer certificate. */}}
{{- define "tether.peerSecretName" -}}
{{- if .Values.tls.peer.existingSecret -}}
{{- .Values.tls.peer.existingSecret -}}
{{- else -}}
{{- printf "%s-peer-tls" (include "tether.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Per-node peer Secrets are <prefix>-<node id>. */}}
{{- define "tether.peerSecretPrefix" -}}
{{- default (printf "%s-peer" (include "tether.fullname" .)) .Values.tls.peer.existingSecretPrefix -}}
{{- end -}}

{{/* Node ids of this release's pods (ordinal + 1), as a JSON list. */}}
{{- define "tether.nodeIds" -}}
{{- $out := list -}}
{{- range $o := include "tether.ordinals" . | fromJsonArray -}}
{{- $out = append $out (add1 (int $o)) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Whether the chart writes the peer TLS Secret from inline PEM. */}}
{{- define "tether.peerInline" -}}
{{- $p := .Values.tls.peer -}}
{{- if and (eq (include "tether.peerMode" .) "shared") (not $p.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/*
A shared certificate names at most one node id, so peers refuse all but one pod of a
clustered release unless tls.peer.allowMissingNodeId accepts certificates without one.
*/}}
{{- define "tether.peerCheckShared" -}}
{{- if and (eq (include "tether.peerMode" .) "shared") (gt (int .Values.replicas) 1) (not .Values.tls.peer.allowMissingNodeId) -}}
{{- fail "tls.peer.existingSecret or inline tls.peer.cert is ONE certificate for every pod, but peers only accept a certificate naming the pod's own node id (SAN URI urn:tether:node:<id>): use per-node certificates (tls.peer.certManager, tls.peer.existingSecretPrefix, or the default <fullname>-peer-<id> Secrets), or set tls.peer.allowMissingNodeId=true to accept a shared certificate without node ids (migration only)" -}}
{{- end -}}
{{- end -}}

{{- define "tether.clientSecretName" -}}
{{- if .Values.tls.client.existingSecret -}}
{{- .Values.tls.client.existingSecret -}}
{{- else -}}
{{- printf "%s-client-tls" (include "tether.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "tether.clientInline" -}}
{{- $c := .Values.tls.client -}}
{{- if and $c.enabled (not $c.existingSecret) (not $c.certManager.enabled) -}}
{{- if not (and $c.cert $c.key) -}}
{{- fail "tls.client.enabled needs tls.client.existingSecret, tls.client.certManager.enabled, or inline tls.client.cert and tls.client.key" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* HTTPS on the admin listener: the Secret with tls.crt / tls.key. */}}
{{- define "tether.adminSecretName" -}}
{{- if .Values.tls.admin.existingSecret -}}
{{- .Values.tls.admin.existingSecret -}}
{{- else -}}
{{- printf "%s-admin-tls" (include "tether.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Whether the chart writes the admin TLS Secret from inline PEM. */}}
{{- define "tether.adminInline" -}}
{{- $a := .Values.tls.admin -}}
{{- if and $a.enabled (not $a.existingSecret) (not $a.certManager.enabled) -}}
{{- if not (and $a.cert $a.key) -}}
{{- fail "tls.admin.enabled needs tls.admin.existingSecret, tls.admin.certManager.enabled, or inline tls.admin.cert and tls.admin.key" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/*
The CA that admin client certificates must chain to, as "<secret>/<key>"; empty without
one. Inline PEM is stored in Secret <fullname>-admin-client-ca, key ca.crt.
*/}}
{{- define "tether.adminClientCA" -}}
{{- $ca := .Values.tls.admin.clientCA -}}
{{- if or $ca.existingSecret $ca.pem -}}
{{- if not .Values.tls.admin.enabled -}}
{{- fail "tls.admin.clientCA needs tls.admin.enabled: client certificates are checked by the admin listener's TLS" -}}
{{- end -}}
{{- if $ca.existingSecret -}}
{{- printf "%s/%s" $ca.existingSecret (default "ca.crt" $ca.key) -}}
{{- else -}}
{{- printf "%s-admin-client-ca/ca.crt" (include "tether.fullname" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Admin Service DNS name that the admin certificate carries and Prometheus verifies. */}}
{{- define "tether.adminServiceHost" -}}
{{- printf "%s-admin.%s.svc" (include "tether.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* Name of the Secret holding TETHER_ADMIN_KEYS / TETHER_TENANTS, empty if none. */}}
{{- define "tether.authSecretName" -}}
{{- if .Values.authSecret.existingSecret -}}
{{- .Values.authSecret.existingSecret -}}
{{- else if or .Values.adminKeys .Values.tenants -}}
{{- printf "%s-auth" (include "tether.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* A TOML value: strings as JSON strings (valid TOML basic strings), integers without
a fraction, booleans as is, lists of strings as arrays. */}}
{{- define "tether.tomlValue" -}}
{{- $v := . -}}
{{- if kindIs "bool" $v -}}
{{- $v -}}
{{- else if or (kindIs "float64" $v) (kindIs "int" $v) (kindIs "int64" $v) -}}
{{- int64 $v -}}
{{- else if kindIs "slice" $v -}}
{{- toJson $v -}}
{{- else -}}
{{- toJson (toString $v) -}}
{{- end -}}
{{- end -}}

{{/* Ordinals of this release's pods and of its voters, as lists of ints. */}}
{{- define "tether.ordinals" -}}
{{- $start := int .Values.ordinalStart -}}
{{- $out := list -}}
{{- range $i := until (int .Values.replicas) -}}
{{- $out = append $out (add $start $i) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}
{{- define "tether.voterOrdinals" -}}
{{- $start := int .Values.ordinalStart -}}
{{- $out := list -}}
{{- range $i := until (int (include "tether.voters" .)) -}}
{{- $out = append $out (toString (add $start $i)) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
Checksums that roll the pods when the node config or the secrets change. The config one
is taken over a placeholder pod's file, so adding pods (which adds files) does not change
it; a change of `voters` does. (With per-node peer certificates, adding pods still changes
the pod template: the peer volume lists every node's Secret.)
*/}}
{{- define "tether.podChecksums" -}}
checksum/config: {{ include "tether.toml" (dict "root" . "pod" "POD" "voter" true) | sha256sum }}
{{- /* A change of `voters` changes some pods' files: restart them all to apply it. */}}
tether.dev/voters: {{ include "tether.voters" . | quote }}
checksum/secrets: {{ include (print $.Template.BasePath "/secrets.yaml") . | sha256sum }}
{{- end -}}
