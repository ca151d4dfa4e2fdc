#!/usr/bin/env python3
"""A forge for the tests: GitHub's, GitLab's or Gitea's REST API (the calls that create a
repository and set its default branch) and smart HTTP git for the repositories it holds, over
HTTPS, on 127.0.0.1.

Every request is held to the forge's own API description (tests/it/support/forge.rs passes the file:
GitHub's OpenAPI, GitLab's transcribed OpenAPI, Gitea's Swagger 2.0), and so is every answer this
server sends: the operation must be described, its JSON body must validate against the described
schema (JSON Schema draft 4 with `$ref`s resolved in the same file, OpenAPI's `nullable: true`
read as an added null type), and the answer's status must be one the operation describes, with a
body valid for it. What the description does not allow is recorded as a violation in the log (one
JSON object per request), which the test asserts is free of them; a request that breaks the
contract is answered 400.

Git requests (anything outside the API's prefix) go to `git http-backend` as CGI, with Basic
auth: any user, the API token as password. A repository the forge has not created is missing, as
on a real forge.
"""

import argparse
import base64
import copy
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema

PREFIX = {"github": "/ghapi", "gitlab": "/api/v4", "gitea": "/api/v1"}


def nullable_as_null_type(node):
    """OpenAPI 3.0's `nullable: true` as JSON Schema: the schema, or null."""
    if isinstance(node, dict):
        node = {k: nullable_as_null_type(v) for k, v in node.items()}
        if node.get("nullable") is True:
            rest = {k: v for k, v in node.items() if k != "nullable"}
            return {"anyOf": [{"type": "null"}, rest]}
        return node
    if isinstance(node, list):
        return [nullable_as_null_type(v) for v in node]
    return node


class Spec:
    """One forge's description: its operations, and validation against its schemas."""

    def __init__(self, path):
        with open(path) as f:
            doc = json.load(f)
        self.swagger = "swagger" in doc
        self.root = nullable_as_null_type(doc)
        self.ops = []
        for template, item in self.root["paths"].items():
            regex = "^" + re.sub(r"\{[^}]+\}", "([^/]+)", template) + "$"
            for method, op in item.items():
                if method in ("get", "post", "put", "patch", "delete"):
                    self.ops.append((method.upper(), re.compile(regex), template, op))

    def find(self, method, path):
        for m, regex, template, op in self.ops:
            if m == method:
                match = regex.match(path)
                if match:
                    return template, op, match.groups()
        return None

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            node = self.pointer(node["$ref"])
        return node

    def pointer(self, ref):
        node = self.root
        for part in ref.lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def errors(self, schema, value):
        """Why `value` does not fit `schema` (empty: it does)."""
        whole = dict(self.root)
        if "$ref" in schema:
            whole["$ref"] = schema["$ref"]
        else:
            whole.update(schema)
        validator = jsonschema.Draft4Validator(whole)
        return ["%s at %s" % (e.message[:300], "/".join(str(p) for p in e.absolute_path))
                for e in validator.iter_errors(value)]

    def request_schema(self, op):
        if self.swagger:
            for param in op.get("parameters", []):
                param = self.resolve(param)
                if param.get("in") == "body":
                    return param.get("schema", {}), param.get("required", False)
            return None, False
        body = op.get("requestBody")
        if not body:
            return None, False
        body = self.resolve(body)
        return body["content"]["application/json"]["schema"], body.get("required", False)

    def response(self, op, status):
        """(described, schema or None) of the answer `status` to `op`."""
        responses = op.get("responses", {})
        answer = responses.get(str(status), responses.get("default"))
        if answer is None:
            return False, None
        answer = self.resolve(answer)
        if self.swagger:
            return True, answer.get("schema")
        content = answer.get("content", {}).get("application/json")
        return True, (content or {}).get("schema")

    def example(self, op, status):
        """The operation's own example of the answer, when the description has one (GitHub)."""
        if self.swagger:
            return None
        answer = self.resolve(op.get("responses", {}).get(str(status), {}))
        content = answer.get("content", {}).get("application/json", {})
        for example in content.get("examples", {}).values():
            example = self.resolve(example)
            if "value" in example:
                return copy.deepcopy(example["value"])
        return None

    def complete(self, schema, value):
        """`value` with the properties `schema` requires and it lacks added (a minimal value of
        each's type): the server may add fields, as newer forges do."""
        schema = self.resolve(schema)
        for key in ("allOf",):
            for part in schema.get(key, []):
                value = self.complete(part, value)
        if "anyOf" in schema or "oneOf" in schema:
            options = schema.get("anyOf", []) + schema.get("oneOf", [])
            if value is None and any(self.resolve(o).get("type") == "null" for o in options):
                return None
            for option in options:
                option = self.resolve(option)
                if option.get("type") != "null":
                    return self.complete(option, value)
            return value
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            value = dict(value) if isinstance(value, dict) else {}
            props = schema.get("properties", {})
            for name in schema.get("required", []):
                if name not in value:
                    value[name] = self.minimal(props.get(name, {}))
            for name, sub in props.items():
                if name in value and isinstance(value[name], dict):
                    value[name] = self.complete(sub, value[name])
            return value
        return value

    def minimal(self, schema):
        schema = self.resolve(schema)
        options = schema.get("anyOf", []) + schema.get("oneOf", [])
        if any(self.resolve(o).get("type") == "null" for o in options):
            return None
        if options:
            return self.minimal(options[0])
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = kind[0]
        return {"string": "", "integer": 0, "number": 0, "boolean": False, "array": [], "null": None}.get(
            kind, self.complete(schema, {}) if kind == "object" or "properties" in schema else None)


class Forge:
    """What the forge holds, and what it answers."""

    def __init__(self, args):
        self.kind = args.kind
        self.spec = Spec(args.spec)
        self.repos = args.repos
        with open(args.token_file) as f:
            self.token = f.read().strip()
        self.login = args.login
        self.orgs = set(filter(None, args.orgs.split(",")))
        self.log_path = args.log
        self.race = args.race
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.creates = {}
        self.namespaces = {args.login: (5, "user")}
        for i, org in enumerate(sorted(self.orgs)):
            self.namespaces[org] = (11 + i, "group")
        self.next_project = 100

    def log(self, entry):
        with self.lock:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def repo_dir(self, full):
        return os.path.join(self.repos, full + ".git")

    def git(self, *args):
        env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
        return subprocess.run(["git"] + list(args), env=env, capture_output=True, text=True)

    def create_repo(self, full):
        path = self.repo_dir(full)
        if os.path.exists(path):
            return False
        os.makedirs(path)
        self.git("init", "--quiet", "--bare", path)
        return True

    def wait_for_race(self, full):
        """With --race N, the first N creates of a repository wait for each other (at most 20 s), so
        the workers behind them all saw the repository missing."""
        if self.race < 2:
            return
        with self.arrived:
            self.creates[full] = self.creates.get(full, 0) + 1
            self.arrived.notify_all()
            self.arrived.wait_for(lambda: self.creates[full] >= self.race, timeout=20)

    def head_of(self, full):
        out = self.git("--git-dir", self.repo_dir(full), "symbolic-ref", "--short", "HEAD")
        return out.stdout.strip() or None

    def set_head(self, full, branch):
        out = self.git("--git-dir", self.repo_dir(full), "rev-parse", "--verify", "--quiet", "refs/heads/" + branch)
        if out.returncode != 0:
            return False
        self.git("--git-dir", self.repo_dir(full), "symbolic-ref", "HEAD", "refs/heads/" + branch)
        return True

    # -- answers, per forge ------------------------------------------------------------------

    def repository_body(self, op, status, full, private, description):
        owner, name = full.split("/", 1)
        if self.kind == "github":
            body = self.spec.example(op, status) or {}
            body.update(name=name, full_name=full, private=private, description=description,
                        default_branch=self.head_of(full) or "main",
                        visibility="private" if private else "public")
            if isinstance(body.get("owner"), dict):
                body["owner"]["login"] = owner
            return body
        if self.kind == "gitea":
            return {"id": 1, "name": name, "full_name": full, "private": private, "description": description or "",
                    "default_branch": self.head_of(full) or "main", "empty": False,
                    "owner": {"id": 1, "login": owner}, "object_format_name": "sha1"}
        return {"id": 100, "path_with_namespace": full, "default_branch": self.head_of(full),
                "visibility": "private" if private else "public", "empty_repo": False,
                "http_url_to_repo": "https://127.0.0.1/%s.git" % full, "ssh_url_to_repo": "git@127.0.0.1:%s.git" % full}

    def github_error(self, message, field_message=None):
        body = {"message": message, "documentation_url": "https://docs.github.com/rest"}
        if field_message:
            body["errors"] = [{"resource": "Repository", "code": "custom", "field": "name", "message": field_message}]
        return body

    def authorized(self, headers):
        if self.kind == "github":
            return headers.get("Authorization") == "Bearer " + self.token
        if self.kind == "gitlab":
            return headers.get("PRIVATE-TOKEN") == self.token
        return headers.get("Authorization") == "token " + self.token

    def api(self, method, template, op, params, body, headers):
        """(status, body) for one described operation."""
        if not self.authorized(headers):
            return 401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
        unquote = urllib.parse.unquote
        if template == "/user":
            answer = self.spec.example(op, 200) or {"id": 5}
            answer["login"] = self.login
            return 200, answer
        if template == "/orgs/{org}":
            org = unquote(params[0])
            if org not in self.orgs:
                return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
            answer = self.spec.example(op, 200) or {"id": 7, "username": org}
            answer["login"] = org
            return 200, answer
        if template in ("/user/repos", "/orgs/{org}/repos"):
            owner = unquote(params[0]) if params else self.login
            name = body.get("name", "")
            full = owner + "/" + name
            private = body.get("private", False)
            if "invalid" in name:
                # A refusal that echoes the token, as a careless proxy might: it must not show.
                words = "name is invalid (request by token %s)" % self.token
                if self.kind == "github":
                    return 422, self.github_error("Repository creation failed.", words)
                return 422, {"message": words}
            self.wait_for_race(full)
            with self.lock:
                created = self.create_repo(full)
            if not created:
                if self.kind == "github":
                    return 422, self.github_error("Repository creation failed.", "name already exists on this account")
                return 409, {"message": "The repository with the same name already exists."}
            return 201, (full, private, body.get("description"))
        if template == "/repos/{owner}/{repo}":
            full = unquote(params[0]) + "/" + unquote(params[1])
            if not os.path.isdir(self.repo_dir(full)):
                return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
            if method == "PATCH" and "default_branch" in body and not self.set_head(full, body["default_branch"]):
                return 422, self.github_error("Validation Failed", "no such branch")
            return 200, (full, False, None)
        if template == "/namespaces/{id}":
            path = unquote(params[0])
            if path not in self.namespaces:
                return 404, {"message": "404 Namespace Not Found"}
            ident, kind = self.namespaces[path]
            return 200, {"id": ident, "name": path.split("/")[-1], "path": path.split("/")[-1], "kind": kind,
                         "full_path": path, "parent_id": None}
        if template == "/projects":
            by_id = {ident: path for path, (ident, _) in self.namespaces.items()}
            namespace = by_id.get(body.get("namespace_id"))
            if namespace is None:
                return 400, {"message": {"namespace": ["is not valid"]}}
            name = body.get("path") or body.get("name")
            full = namespace + "/" + name
            if "invalid" in name:
                return 400, {"message": {"path": ["is invalid (request by token %s)" % self.token]}}
            self.wait_for_race(full)
            with self.lock:
                created = self.create_repo(full)
            if not created:
                return 400, {"message": {"name": ["has already been taken"], "path": ["has already been taken"]}}
            return 201, (full, body.get("visibility") != "public", body.get("description"))
        if template == "/projects/{id}":
            full = unquote(params[0])
            if not os.path.isdir(self.repo_dir(full)):
                return 404, {"message": "404 Project Not Found"}
            if "default_branch" in body and not self.set_head(full, body["default_branch"]):
                return 400, {"message": "Could not change HEAD"}
            return 200, (full, False, None)
        return 404, {"message": "Not Found"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    forge = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def body_bytes(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send(self, status, body, content_type="application/json", extra=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        forge = self.forge
        path, _, query = self.path.partition("?")
        body = self.body_bytes()
        prefix = PREFIX[forge.kind]
        if path.startswith(prefix + "/"):
            self.handle_api(method, path[len(prefix):], query, body)
        else:
            self.handle_git(method, path, query, body)

    def handle_api(self, method, path, query, raw):
        forge = self.forge
        spec = forge.spec
        entry = {"method": method, "path": path, "query": query}
        violations = []
        if forge.token in self.path:
            violations.append("the token is in the request's URL")
        found = spec.find(method, path)
        if found is None:
            violations.append("%s %s is not an operation of the description" % (method, path))
            entry["violations"] = violations
            forge.log(entry)
            return self.send(400, {"message": "contract violation: " + "; ".join(violations)})
        template, op, params = found
        entry["operation"] = template
        body = {}
        schema, required = spec.request_schema(op)
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as e:
                violations.append("the body is not JSON: %s" % e)
            if schema is None:
                violations.append("the operation takes no body")
            elif not violations:
                violations += ["request: " + e for e in spec.errors(schema, body)]
        elif required:
            violations.append("the operation requires a body")
        entry["body"] = body
        if violations:
            entry["violations"] = violations
            forge.log(entry)
            return self.send(400, {"message": "contract violation: " + "; ".join(violations)})
        status, answer = forge.api(method, template, op, params, body, self.headers)
        if isinstance(answer, tuple):
            answer = forge.repository_body(op, status, *answer)
        described, answer_schema = spec.response(op, status)
        if not described:
            violations.append("answer %d is not described for %s %s" % (status, method, template))
        elif answer_schema is not None:
            answer = spec.complete(answer_schema, answer)
            violations += ["answer: " + e for e in spec.errors(answer_schema, answer)]
        entry["status"] = status
        entry["answer"] = answer
        if violations:
            entry["violations"] = violations
        forge.log(entry)
        self.send(status, answer)

    def handle_git(self, method, path, query, body):
        forge = self.forge
        auth = self.headers.get("Authorization", "")
        user = None
        if auth.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                if password == forge.token:
                    user = name
            except ValueError:
                pass
        if user is None:
            forge.log({"git": method, "path": path, "status": 401})
            return self.send(401, b"authentication required\n", "text/plain",
                             [("WWW-Authenticate", 'Basic realm="forge"')])
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": forge.repos,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "REQUEST_METHOD": method,
            "PATH_INFO": urllib.parse.unquote(path),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": user,
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, _, rest = out.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, rest = out.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        content_type = dict((k.lower(), v) for k, v in headers).get("content-type", "text/plain")
        extra = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-length")]
        if status == 404:
            rest = b"Repository not found.\n"
        forge.log({"git": method, "path": path, "status": status})
        self.send(status, rest, content_type, extra)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", required=True, choices=sorted(PREFIX))
    parser.add_argument("--spec", required=True)
    parser.add_argument("--repos", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--login", required=True)
    parser.add_argument("--orgs", default="")
    parser.add_argument("--log", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--race", type=int, default=0)
    args = parser.parse_args()
    Handler.forge = Forge(args)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
