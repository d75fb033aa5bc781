#!/usr/bin/env python3
"""Generates tests/env/stages/pod.yaml: KWOK Stages that make pods on fake nodes go
through the kubelet's startup sequence and write the kubelet's events.

Why generated: KWOK's own `event` step can only send a fixed reason/message with
source `kwok_controller` and no fieldPath. The `apply` step, however, creates any object
from a template, so each kubelet event is written as a core/v1 Event with
source.component=kubelet, source.host=<node> and involvedObject.fieldPath. A template
renders exactly one object and steps cannot loop, so per-container events are unrolled
for the first MAX_CONTAINERS containers; indexes past the end re-render the last
container's event under the same name, which the API server treats as a no-op update.

Run: python3 tests/env/stages/gen.py > tests/env/stages/pod.yaml
"""
import json
import sys

MAX_CONTAINERS = 4
A = "podtrace.dev/testenv-"

# Go-template preamble shared by every template.
PRE = (
    '{{ $ann := or .metadata.annotations dict }}'
    '{{ $node := .spec.nodeName }}'
    '{{ $now := Now }}'
    '{{ $ts := dateInZone "2006-01-02T15:04:05Z" now "UTC" }}'
    f'{{{{ $pd := or (index $ann "{A}pull-duration") "800ms" }}}}'
    f'{{{{ $pullMode := or (index $ann "{A}image-pull") "pull" }}}}'
    f'{{{{ $cachedList := splitList "," (or (index $ann "{A}cached-images") "") }}}}'
)


def pick(group, i):
    """Binds $c to container i of group (clamped to the last one)."""
    return (
        f'{{{{ $cs := .spec.{group} }}}}'
        f'{{{{ $i := min {i} (sub (len $cs) 1) }}}}'
        '{{ $c := index $cs $i }}'
        '{{ $cached := or (eq $pullMode "cached") (has $c.image $cachedList) }}'
    )


def event(group, key, reason, etype, message, count="1", first="$ts", last="$ts"):
    """An Event template; key names the event so repeats aggregate like the kubelet's."""
    return PRE + pick(group, "{{I}}") + f"""
{{{{ $count := {count} }}}}
apiVersion: v1
kind: Event
metadata:
  name: {{{{ printf "%s.%s" .metadata.name (printf "%s/%s/%s" .metadata.uid {key} $c.name | sha256sum | trunc 16) | Quote }}}}
  namespace: {{{{ .metadata.namespace | Quote }}}}
involvedObject:
  apiVersion: v1
  kind: Pod
  name: {{{{ .metadata.name | Quote }}}}
  namespace: {{{{ .metadata.namespace | Quote }}}}
  uid: {{{{ .metadata.uid | Quote }}}}
  fieldPath: {{{{ printf "spec.{group}{{%s}}" $c.name | Quote }}}}
reason: {{{{ {reason} | Quote }}}}
message: {{{{ {message} | Quote }}}}
type: {{{{ {etype} | Quote }}}}
source:
  component: kubelet
  host: {{{{ $node | Quote }}}}
reportingComponent: kubelet
reportingInstance: {{{{ $node | Quote }}}}
count: {{{{ $count }}}}
{{{{ if eq (int $count) 1 }}}}firstTimestamp: {{{{ {first} | Quote }}}}{{{{ end }}}}
lastTimestamp: {{{{ {last} | Quote }}}}
"""


BACKDATED = 'dateInZone "2006-01-02T15:04:05Z" (dateModify (printf "-%s" $pd) now) "UTC"'
PULLED_OK = ('printf "Successfully pulled image %q in %s (%s including waiting). Image size: %d bytes." '
             '$c.image $pd $pd (add 1000000 (mod (atoi (adler32sum $c.image)) 90000000))')
PRESENT = 'printf "Container image %q already present on machine" $c.image'


def start_events(group, only_first=False, count="1"):
    """Pulling/Pulled, Created, Started for each container of group (kubelet order)."""
    n = 1 if only_first else MAX_CONTAINERS
    steps = []
    for i in range(n):
        evs = []
        if count == "1":
            # A cached image has no Pulling event: render its Pulled event in that slot too.
            evs.append(event(group, '(ternary "Pulled" "Pulling" $cached)', '(ternary "Pulled" "Pulling" $cached)',
                             '"Normal"', f'(ternary ({PRESENT}) (printf "Pulling image %q" $c.image) $cached)',
                             first=f'(ternary $ts ({BACKDATED}) $cached)', last=f'(ternary $ts ({BACKDATED}) $cached)'))
            evs.append(event(group, '"Pulled"', '"Pulled"', '"Normal"', f'(ternary ({PRESENT}) ({PULLED_OK}) $cached)'))
        else:
            # A restart finds the image present. That message differs from the first
            # "Successfully pulled", so the kubelet records it as a separate event.
            evs.append(event(group, '(ternary "Pulled" "Pulled-present" $cached)', '"Pulled"', '"Normal"', PRESENT,
                             count=f'(ternary {count} (sub {count} 1) $cached)'))
        evs.append(event(group, '"Created"', '"Created"', '"Normal"', 'printf "Created container: %s" $c.name', count=count))
        evs.append(event(group, '"Started"', '"Started"', '"Normal"', 'printf "Started container %s" $c.name', count=count))
        steps += [e.replace("{{I}}", str(i)) for e in evs]
    return [apply(t) for t in steps]


def apply(tpl):
    return {"apply": {"type": "merge", "template": tpl}}


def patch_status(tpl):
    return {"patch": {"subresource": "status", "root": "status", "template": PRE + "\n" + tpl}}


def names(group):
    return f'[{{{{ range $j, $x := .spec.{group} }}}}{{{{ if $j }}}} {{{{ end }}}}{{{{ $x.name }}}}{{{{ end }}}}]'


def cstatus(group, state, ready="false", started="false", extra=""):
    return f"""{group[:-1]}Statuses:
{{{{ range $j, $x := .spec.{group} }}}}
- name: {{{{ $x.name | Quote }}}}
  image: {{{{ $x.image | Quote }}}}
  ready: {ready}
  started: {started}
  restartCount: 0
{extra}  state:
{state}
{{{{ end }}}}
"""


RUNNING_IDS = """  imageID: {{ printf "%s@sha256:%s" $x.image (sha256sum $x.image) | Quote }}
  containerID: {{ printf "containerd://%s" (sha256sum (printf "%s/%s/0" $.metadata.uid $x.name)) | Quote }}
"""


def cond(ctype, status, reason="", message=""):
    s = f"""- type: {ctype}
  status: "{status}"
  lastProbeTime: null
  lastTransitionTime: {{{{ $now | Quote }}}}
"""
    # The status patch is a strategic merge: a condition turning True must drop the
    # reason/message it had while False, as the kubelet's conditions do.
    s += f"  reason: {reason}\n" if reason else "  reason: null\n"
    s += f"  message: '{message}'\n" if message else "  message: null\n"
    return s


def not_ready(group="containers"):
    return (cond("Ready", "False", "ContainersNotReady", f"containers with unready status: {names(group)}")
            + cond("ContainersReady", "False", "ContainersNotReady", f"containers with unready status: {names(group)}"))


def sel(*exprs):
    out = [{"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}]
    for e in exprs:
        out.append(e)
    return {"matchExpressions": out}


def ex(key, op, *values):
    d = {"key": key, "operator": op}
    if values:
        d["values"] = list(values)
    return d


def delay(ms, annotation=None, jitter=None):
    d = {"durationMilliseconds": ms}
    if annotation:
        d["durationFrom"] = {"expressionFrom": f'.metadata.annotations["{A}{annotation}"]'}
    if jitter:
        d["jitterDurationMilliseconds"] = jitter
    return d


def stage(name, selector, dly, steps, weight=None):
    spec = {"resourceRef": {"apiGroup": "v1", "kind": "Pod"}, "selector": selector}
    if dly:
        spec["delay"] = dly
    spec["steps"] = steps
    if weight:
        spec["weight"] = weight
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": name}, "spec": spec}


PHASE_PENDING = ex(".status.phase", "In", "Pending")
INITIALIZED = ex('.status.conditions.[] | select( .type == "Initialized" ) | .status', "In", "True")
NOT_FAIL = ex(f'.metadata.annotations["{A}image-pull"]', "NotIn", "fail")
FAIL = ex(f'.metadata.annotations["{A}image-pull"]', "In", "fail")
CRASH = ex(f'.metadata.annotations["{A}crash"]', "In", "true")
C0 = ".status.containerStatuses.[0]"

stages = []

# 1. Sandbox created: IPs, PodReadyToStartContainers, containers waiting.
stages.append(stage("podtrace-pod-sandbox", sel(ex(".status.podIP", "DoesNotExist")),
                    delay(150, "sandbox-duration", 400), [patch_status(
    "conditions:\n" + cond("PodReadyToStartContainers", "True")
    + '{{ if .spec.initContainers }}'
    + cond("Initialized", "False", "ContainersNotInitialized", f"containers with incomplete status: {names('initContainers')}")
    + '{{ else }}' + cond("Initialized", "True") + '{{ end }}'
    + not_ready()
    + '{{ if .spec.initContainers }}'
    + cstatus("initContainers", "    waiting:\n      reason: PodInitializing")
    + cstatus("containers", "    waiting:\n      reason: PodInitializing")
    + '{{ else }}'
    + cstatus("containers", "    waiting:\n      reason: ContainerCreating")
    + '{{ end }}'
    + """hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
hostIPs:
- ip: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Pending
startTime: {{ $now | Quote }}
""")]))

# 2. Init containers pulled and started (all at once: see docs/testenv.md).
stages.append(stage("podtrace-pod-init-start", sel(
    ex(".status.podIP", "Exists"), PHASE_PENDING,
    ex('.status.conditions.[] | select( .type == "Initialized" ) | .status', "NotIn", "True"),
    ex(".status.initContainerStatuses.[].state.waiting.reason", "Exists")),
    delay(800, "pull-duration"),
    start_events("initContainers") + [patch_status(
        cstatus("initContainers", "    running:\n      startedAt: {{ $now | Quote }}", started="true", extra=RUNNING_IDS))]))

# 3. Init containers exit 0; app containers move to ContainerCreating.
stages.append(stage("podtrace-pod-init-done", sel(
    PHASE_PENDING, ex(".status.initContainerStatuses.[].state.running.startedAt", "Exists")),
    delay(500, "init-duration"), [patch_status(
        "conditions:\n" + cond("Initialized", "True")
        + f"""initContainerStatuses:
{{{{ range $j, $x := .spec.initContainers }}}}
- name: {{{{ $x.name | Quote }}}}
  image: {{{{ $x.image | Quote }}}}
  ready: true
  started: false
  restartCount: 0
{RUNNING_IDS}  state:
    terminated:
      exitCode: 0
      reason: Completed
      startedAt: {{{{ (index $.status.initContainerStatuses $j).state.running.startedAt | Quote }}}}
      finishedAt: {{{{ $now | Quote }}}}
{{{{ end }}}}
""" + cstatus("containers", "    waiting:\n      reason: ContainerCreating"))]))

# 4. App containers pulled, created, started (not yet ready).
stages.append(stage("podtrace-pod-start", sel(
    PHASE_PENDING, INITIALIZED, NOT_FAIL,
    ex(".status.containerStatuses.[].state.waiting.reason", "In", "ContainerCreating")),
    delay(800, "pull-duration"),
    start_events("containers") + [patch_status(
        "conditions:\n" + not_ready()
        + cstatus("containers", "    running:\n      startedAt: {{ $now | Quote }}", started="true", extra=RUNNING_IDS)
        + "phase: Running\n")]))

# 5. Readiness: all containers ready.
stages.append(stage("podtrace-pod-ready", sel(
    ex(".status.phase", "In", "Running"),
    ex('.status.conditions.[] | select( .type == "ContainersReady" ) | .status', "In", "False"),
    ex('[.status.containerStatuses.[] | .state.running != null] | all', "In", "true")),
    delay(300, "ready-delay"), [patch_status(
        "conditions:\n" + cond("ContainersReady", "True") + cond("Ready", "True")
        + """containerStatuses:
{{ range $j, $x := .status.containerStatuses }}
- name: {{ $x.name | Quote }}
  image: {{ $x.image | Quote }}
  imageID: {{ $x.imageID | Quote }}
  containerID: {{ $x.containerID | Quote }}
  ready: true
  started: true
  restartCount: {{ $x.restartCount }}
  state: {{ $x.state | toJson }}
{{ if $x.lastState }}  lastState: {{ $x.lastState | toJson }}{{ end }}
{{ end }}
""")]))

# 6. Crash loop: the first container exits 1 a while after it became ready.
C0_REST = """{{ range $j, $x := .status.containerStatuses }}{{ if $j }}
- {{ $x | toJson }}{{ end }}{{ end }}
"""
stages.append(stage("podtrace-pod-crash", sel(
    CRASH, ex(".status.phase", "In", "Running"),
    ex('.status.conditions.[] | select( .type == "Ready" ) | .status', "In", "True"),
    ex(f"{C0}.state.running.startedAt", "Exists")),
    delay(1000, "crash-after"), [patch_status(
        "conditions:\n" + cond("ContainersReady", "False", "ContainersNotReady", "containers with unready status: [{{ (index .spec.containers 0).name }}]")
        + cond("Ready", "False", "ContainersNotReady", "containers with unready status: [{{ (index .spec.containers 0).name }}]")
        + """{{ $x := index .status.containerStatuses 0 }}
containerStatuses:
- name: {{ $x.name | Quote }}
  image: {{ $x.image | Quote }}
  imageID: {{ $x.imageID | Quote }}
  containerID: {{ $x.containerID | Quote }}
  ready: false
  started: false
  restartCount: {{ $x.restartCount }}
{{ if $x.lastState }}  lastState: {{ $x.lastState | toJson }}{{ end }}
  state:
    terminated:
      exitCode: 1
      reason: Error
      startedAt: {{ $x.state.running.startedAt | Quote }}
      finishedAt: {{ $now | Quote }}
      containerID: {{ $x.containerID | Quote }}
""" + C0_REST)], weight=None))

# 7. Crash loop: back-off (restartCount counts the exits so far, as the kubelet reports it).
BACKOFF_MSG = 'printf "Back-off restarting failed container %s in pod %s_%s(%s)" $c.name $.metadata.name $.metadata.namespace $.metadata.uid'
stages.append(stage("podtrace-pod-crash-backoff", sel(
    CRASH, ex(f"{C0}.state.terminated.exitCode", "Exists")),
    delay(200), [apply(event("containers", '"BackOff"', '"BackOff"', '"Warning"', BACKOFF_MSG,
                             count="(add1 (index .status.containerStatuses 0).restartCount)").replace("{{I}}", "0")),
                 patch_status("""{{ $x := index .status.containerStatuses 0 }}
containerStatuses:
- name: {{ $x.name | Quote }}
  image: {{ $x.image | Quote }}
  imageID: {{ $x.imageID | Quote }}
  containerID: {{ $x.containerID | Quote }}
  ready: false
  started: false
  restartCount: {{ add1 $x.restartCount }}
  lastState:
    terminated: {{ $x.state.terminated | toJson }}
  state:
    waiting:
      reason: CrashLoopBackOff
      message: {{ printf "back-off %ds restarting failed container=%s pod=%s_%s(%s)" (mul 10 (add1 $x.restartCount)) $x.name $.metadata.name $.metadata.namespace $.metadata.uid | Quote }}
""" + C0_REST)]))

# 8. Crash loop: restart after the back-off, at most 5 times (then it stays in CrashLoopBackOff).
stages.append(stage("podtrace-pod-crash-restart", sel(
    CRASH, ex(f"{C0}.state.waiting.reason", "In", "CrashLoopBackOff"),
    ex(f"{C0}.restartCount < 5", "In", "true")),
    delay(2000, "crash-backoff"),
    start_events("containers", only_first=True, count="(add1 (index .status.containerStatuses 0).restartCount)")
    + [patch_status("""{{ $x := index .status.containerStatuses 0 }}
containerStatuses:
- name: {{ $x.name | Quote }}
  image: {{ $x.image | Quote }}
  imageID: {{ $x.imageID | Quote }}
  containerID: {{ printf "containerd://%s" (sha256sum (printf "%s/%s/%d" $.metadata.uid $x.name (int $x.restartCount))) | Quote }}
  ready: false
  started: true
  restartCount: {{ $x.restartCount }}
  lastState: {{ $x.lastState | toJson }}
  state:
    running:
      startedAt: {{ $now | Quote }}
""" + C0_REST)]))

# 9. Image pull failure of the first app container.
PULL_ERR = ('printf "rpc error: code = NotFound desc = failed to pull and unpack image %q: '
            'failed to resolve reference %q: %s: not found" $c.image $c.image $c.image')
stages.append(stage("podtrace-pod-pull-fail", sel(
    PHASE_PENDING, INITIALIZED, FAIL, ex(f"{C0}.state.waiting.reason", "In", "ContainerCreating")),
    delay(800, "pull-duration"),
    [apply(event("containers", '"Pulling"', '"Pulling"', '"Normal"', 'printf "Pulling image %q" $c.image',
                 first=BACKDATED, last=BACKDATED).replace("{{I}}", "0")),
     apply(event("containers", '"Failed-pull"', '"Failed"', '"Warning"',
                 f'printf "Failed to pull image %q: %s" $c.image ({PULL_ERR})').replace("{{I}}", "0")),
     apply(event("containers", '"Failed-ErrImagePull"', '"Failed"', '"Warning"', '"Error: ErrImagePull"').replace("{{I}}", "0")),
     patch_status("""{{ $x := index .status.containerStatuses 0 }}{{ $c := index .spec.containers 0 }}
containerStatuses:
- name: {{ $x.name | Quote }}
  image: {{ $x.image | Quote }}
  ready: false
  started: false
  restartCount: 0
  state:
    waiting:
      reason: ErrImagePull
      message: {{ """ + PULL_ERR + """ | Quote }}
""" + C0_REST)]))

stages.append(stage("podtrace-pod-pull-backoff", sel(
    ex(f"{C0}.state.waiting.reason", "In", "ErrImagePull")),
    delay(1000, "pull-backoff"),
    [apply(event("containers", '"BackOff-pull"', '"BackOff"', '"Normal"', 'printf "Back-off pulling image %q" $c.image').replace("{{I}}", "0")),
     apply(event("containers", '"Failed-ImagePullBackOff"', '"Failed"', '"Warning"', '"Error: ImagePullBackOff"').replace("{{I}}", "0")),
     patch_status("""{{ $x := index .status.containerStatuses 0 }}{{ $c := index .spec.containers 0 }}
containerStatuses:
- name: {{ $x.name | Quote }}
  image: {{ $x.image | Quote }}
  ready: false
  started: false
  restartCount: 0
  state:
    waiting:
      reason: ImagePullBackOff
      message: {{ printf "Back-off pulling image %q: ErrImagePull: %s" $c.image $x.state.waiting.message | Quote }}
""" + C0_REST)]))

# 10. Deletion: the pod object goes away without waiting for the grace period. No Killing
# events: an event cannot be created in a terminating namespace, and a failed step makes
# KWOK retry the whole stage forever, which would leave the namespace stuck.
kill = []
stages.append({"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": "podtrace-pod-delete"},
               "spec": {"resourceRef": {"apiGroup": "v1", "kind": "Pod"},
                        "selector": {"matchExpressions": [ex(".metadata.deletionTimestamp", "Exists"),
                                                          ex(".metadata.finalizers", "DoesNotExist")]},
                        "delay": delay(200, "delete-duration"),
                        "steps": kill + [{"delete": True}]}})

out = sys.stdout
out.write("# GENERATED by tests/env/stages/gen.py; edit that file, not this one.\n")
for s in stages:
    out.write("---\n")
    json.dump(s, out, indent=1)
    out.write("\n")
