# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn a Hugging Face repository selection into FileSpecs for ``_download.Downloader``.

huggingface_hub is used for the hub API only: ``HfApi.model_info(files_metadata=True)`` for the
resolved commit and each file's size, LFS sha256 or git blob id; ``hf_hub_url`` for the file URL
(pinned to the resolved commit, so that every file comes from the same commit); ``build_hf_headers``
for the token and user agent. The bytes are moved by ``_download``, which resumes across runs.
"""

from __future__ import annotations

import traceback

from ansible_collections.gpufleet.inference.plugins.module_utils._download import DownloadError, FileSpec, safe_name

try:
    from huggingface_hub import HfApi, hf_hub_url
    from huggingface_hub import __version__ as HF_HUB_VERSION
    from huggingface_hub.utils import (  # re-exported there by every release, old and new
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
        build_hf_headers,
        filter_repo_objects,
    )
except ImportError:
    HAS_HF_HUB = False
    HF_HUB_IMPORT_ERROR = traceback.format_exc()
    HF_HUB_VERSION = None
else:
    HAS_HF_HUB = True
    HF_HUB_IMPORT_ERROR = None

LIBRARY_NAME = "gpufleet.inference"


def offline_specs(repo, revision, files):
    """FileSpecs that only accept files a previous run recorded from ``repo`` at ``revision`` (no network)."""

    def match(source):
        return source.get("type") == "hf" and source.get("repo") == repo and revision in (source.get("revision"), source.get("commit"))

    return [FileSpec(safe_name(name, "files"), source_match=match) for name in files]


def _describe(exc):
    text = str(exc).strip().splitlines()
    return "%s: %s" % (type(exc).__name__, text[0] if text else "")


def resolve(repo, revision, endpoint=None, token=None, files=None, allow_patterns=None, ignore_patterns=None, timeout=60,
            library_version=None):
    """Ask the hub what to fetch: ``(commit sha, [FileSpec])``. Raises DownloadError."""
    api = HfApi(endpoint=endpoint.rstrip("/") if endpoint else None, token=token, library_name=LIBRARY_NAME,
                library_version=library_version)
    where = "hf_repo %s at %s" % (repo, api.endpoint)
    try:
        info = api.model_info(repo, revision=revision, files_metadata=True, timeout=timeout)
    except GatedRepoError:
        raise DownloadError("%s is gated and the token has not been granted access; accept its conditions on the hub "
                            "with the account of the token." % where)
    except RepositoryNotFoundError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        raise DownloadError(
            "%s was not found (HTTP %s), or it is private or gated and no token was accepted: set token to an access "
            "token that can read it." % (where, status)
        )
    except RevisionNotFoundError:
        raise DownloadError("revision %s was not found in %s" % (revision, where))
    except OfflineModeIsEnabled as exc:
        raise DownloadError("HF_HUB_OFFLINE is set on the host (%s); use offline=true to use files already in dest." % _describe(exc))
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise DownloadError("the hub refused the token for %s (HTTP %s): check that token is a valid access token "
                                "that can read this repository." % (where, status))
        raise DownloadError("the hub refused to describe %s: %s" % (where, _describe(exc)))
    except Exception as exc:  # pylint: disable=broad-except
        # httpx errors: connection refused, TLS, timeouts.
        raise DownloadError("cannot query %s: %s" % (where, _describe(exc)))

    commit = info.sha
    if not commit:
        raise DownloadError("%s did not report the commit sha of revision %s" % (where, revision))
    siblings = dict((sibling.rfilename, sibling) for sibling in info.siblings or [])
    if files:
        names = [safe_name(name, "files") for name in files]
        absent = [name for name in names if name not in siblings]
        if absent:
            raise DownloadError("files not found in %s, revision %s (%s): %s" % (where, revision, commit, ", ".join(absent)))
    else:
        names = list(filter_repo_objects(sorted(siblings), allow_patterns=allow_patterns, ignore_patterns=ignore_patterns))
        if not names:
            raise DownloadError("allow_patterns/ignore_patterns select no file of %s, revision %s (%s)" % (where, revision, commit))
        names = [safe_name(name, "hf_repo file") for name in names]

    headers = build_hf_headers(token=token, library_name=LIBRARY_NAME, library_version=library_version)
    auth = dict((k, v) for k, v in headers.items() if k.lower() == "authorization")
    plain = dict((k, v) for k, v in headers.items() if k.lower() != "authorization")
    source = {"type": "hf", "repo": repo, "revision": revision, "commit": commit}
    specs = []
    for name in names:
        sibling = siblings[name]
        lfs = sibling.lfs
        if lfs:
            size, sha256, blob = lfs.size, lfs.sha256, None
        else:
            size, sha256, blob = sibling.size, None, sibling.blob_id
        if size is None or not (sha256 or blob):
            raise DownloadError("%s gave no size or hash for %s; cannot verify it" % (where, name))
        url = hf_hub_url(repo, name, revision=commit, endpoint=api.endpoint)
        specs.append(FileSpec(name, url=url, size=size, sha256=sha256, blob_sha1=blob, source=source,
                              headers=plain, auth_headers=auth))
    return commit, specs
