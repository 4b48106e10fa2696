# Shared by the Java adapters' install.sh (sourced): compiles an adapter (with
# AdapterProtocol.java, the protocol loop every Java adapter shares) with Maven against
# the pinned artifacts of its pom.xml and writes its classpath, unless that build is already
# there and newer than its sources. Usage:
#   maven_build NAME HERE DEST M2 MAIN_CLASS REQUIRED_JAR...
# NAME for messages; HERE the adapter folder (pom.xml, MAIN_CLASS.java); DEST the build
# folder (target/classes, classpath.txt); M2 the local Maven repository; each REQUIRED_JAR
# (e.g. amazon-kinesis-client-3.5.1) must be on the classpath.
# shellcheck shell=bash
maven_build() {
  local name="$1" here="$2" dest="$3" m2="$4" main="$5"
  shift 5
  local class="$dest/target/classes/$main.class" cp="$dest/classpath.txt"
  _maven_build_done() {
    [ -f "$class" ] && [ -f "$cp" ] && [ "$class" -nt "$here/$main.java" ] &&
      [ "$class" -nt "$here/../java-protocol/AdapterProtocol.java" ] &&
      [ "$cp" -nt "$here/pom.xml" ] || return 1
    local jar jars
    for jar in "$@"; do
      grep -Eq "(^|:)[^:]*/$jar\.jar(:|$)" "$cp" || return 1
    done
    IFS=: read -ra jars <"$cp"
    for jar in "${jars[@]}"; do [ -f "$jar" ] || return 1; done
  }
  if _maven_build_done "$@"; then
    echo "$name: $* already built in $dest"
    return 0
  fi
  local log
  log="$(mktemp)"
  mkdir -p "$dest"
  rm -f "$cp"  # build-classpath leaves an unchanged file untouched; the check wants a fresh one
  if ! mvn -B -q -Dstyle.color=never -f "$here/pom.xml" -Dmaven.repo.local="$m2" process-classes >"$log" 2>&1 ||
      ! _maven_build_done "$@"; then
    sed 's/\x1b\[[0-9;]*m//g' "$log" >&2; rm -f "$log"
    echo "$name: install failed" >&2
    return 1
  fi
  rm -f "$log"
  echo "$name: built against $* in $dest"
}
