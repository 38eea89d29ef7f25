"""The kiosk browser's managed policies: Chromium locked to the kiosk's own origin.

Chromium reads every ``*.json`` in ``/etc/chromium/policies/managed/`` at start (and again when
the directory changes) and applies those policies as mandatory: the candidate cannot change
them. The set is built from the kiosk's origin alone (:func:`kiosk_policies`), so the policy file
and the kiosk unit's URL never disagree. Every name here is one Chromium's policy list defines
(checked by hand against Debian's Chromium 156: ``chrome://policy`` listed each as known and
applied; it flags unknown names, so check there again after a major Chromium update).

Pure: no I/O. :mod:`provisioning.install_station` writes the file and compares an installed one.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

POLICY_DIR = "etc/chromium/policies/managed"  # under the root the station is installed into
POLICY_FILE = "examkiosk.json"
DEFAULT_KIOSK_URL = "http://127.0.0.1:8700/"

# Everything the allow list does not name. "*" covers http(s) and any other scheme; the browser's
# own pages (settings, downloads, history, flags, the new-tab page), local files and page source
# are named as well so the intent stays visible.
BLOCKED = ["*", "chrome://*", "chrome-untrusted://*", "devtools://*", "file://*", "view-source:*",
           "javascript:*"]

# Content settings: 2 means "block" for every Default*Setting policy.
BLOCK = 2

LOCKDOWN: dict[str, Any] = {
    # No developer tools (F12, Ctrl+Shift+I/J/C, Ctrl+U view-source); remote inspection of pages too.
    "DeveloperToolsAvailability": 2,
    "PrintingEnabled": False,  # Ctrl+P: print preview and its "save as PDF" file picker
    "DownloadRestrictions": 3,  # 3: block all downloads
    "AllowFileSelectionDialogs": False,  # Ctrl+O, Ctrl+S, <input type=file>: no file chooser
    "IncognitoModeAvailability": 1,  # 1: incognito disabled (no Ctrl+Shift+N window)
    "BrowserGuestModeEnabled": False,
    "BrowserAddPersonEnabled": False,
    "BrowserSignin": 0,  # 0: sign-in disabled
    "SyncDisabled": True,
    "ForceEphemeralProfiles": True,  # the profile is deleted when the browser closes
    "SavingBrowserHistoryDisabled": True,
    "PasswordManagerEnabled": False,
    "PasswordLeakDetectionEnabled": False,
    "AutofillAddressEnabled": False,
    "AutofillCreditCardEnabled": False,
    "ImportAutofillFormData": False,
    "TranslateEnabled": False,
    "SpellcheckEnabled": False,
    "SearchSuggestEnabled": False,
    "DefaultSearchProviderEnabled": False,  # nothing typed anywhere becomes a web search
    "ExtensionInstallBlocklist": ["*"],
    "HideWebStoreIcon": True,
    "EditBookmarksEnabled": False,
    "BookmarkBarEnabled": False,
    "ShowHomeButton": False,
    "TaskManagerEndProcessEnabled": False,  # Shift+Esc's task manager cannot end the kiosk page
    "DefaultBrowserSettingEnabled": False,
    "BackgroundModeEnabled": False,
    "BrowserLabsEnabled": False,
    "CommandLineFlagSecurityWarningsEnabled": False,  # no infobar over the exam
    "MetricsReportingEnabled": False,
    "UserFeedbackAllowed": False,  # no Alt+Shift+I feedback form
    "FeedbackSurveysEnabled": False,
    "SafeBrowsingProtectionLevel": 0,  # the station is offline from Google; no lookups or warnings
    "EnableMediaRouter": False,  # no casting the screen
    "ScreenCaptureAllowed": False,  # no page may capture the screen
    "DesktopSharingHubEnabled": False,
    "QRCodeGeneratorEnabled": False,
    "ShoppingListEnabled": False,
    "SideSearchEnabled": False,
    "GoogleSearchSidePanelEnabled": False,
    "HelpMeWriteSettings": 2,  # 2: generative writing help off
    "TabCompareSettings": 2,
    "HistorySearchSettings": 2,
    "AutofillPredictionSettings": 2,
    "PaymentMethodQueryEnabled": False,
    "AllowDinosaurEasterEgg": False,
    "ExternalProtocolDialogShowAlwaysOpenCheckbox": False,
    "DefaultPopupsSetting": BLOCK,  # window.open and target=_blank open no window
    "DefaultNotificationsSetting": BLOCK,
    "DefaultGeolocationSetting": BLOCK,
    "DefaultClipboardSetting": BLOCK,  # the async clipboard API (copying the paper out)
    "DefaultSensorsSetting": BLOCK,
    "DefaultFileSystemReadGuardSetting": BLOCK,
    "DefaultFileSystemWriteGuardSetting": BLOCK,
    "DefaultWebUsbGuardSetting": BLOCK,
    "DefaultSerialGuardSetting": BLOCK,
    "DefaultWebBluetoothGuardSetting": BLOCK,
    "DefaultWebHidGuardSetting": BLOCK,
    # The station agent owns the camera and the microphone; the page never opens them.
    "AudioCaptureAllowed": False,
    "VideoCaptureAllowed": False,
    "AutoplayAllowed": True,  # the spoken prompts start without a click
}


class BadKioskUrl(ValueError):
    """The kiosk URL is not an http(s) URL with a host."""


def kiosk_origin(url: str) -> str:
    """``scheme://host[:port]`` of the kiosk URL (what the allow list names)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadKioskUrl(f"the kiosk URL must be http://HOST[:PORT]/..., not {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise BadKioskUrl(f"the kiosk URL has a bad port: {url!r}") from exc
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def kiosk_policies(kiosk_url: str) -> dict[str, Any]:
    """The managed policies of the kiosk browser showing ``kiosk_url``: only its origin may load."""
    return {"URLAllowlist": [kiosk_origin(kiosk_url)], "URLBlocklist": list(BLOCKED), **LOCKDOWN}


def dump(policies: dict[str, Any]) -> str:
    """The policy file's text (sorted keys, so the same set is always the same bytes)."""
    return json.dumps(policies, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def differences(expected: dict[str, Any], installed_text: str) -> list[str]:
    """What an installed policy file lacks or sets otherwise, one line per policy name; a file
    that is not a JSON object is one line saying so."""
    try:
        installed = json.loads(installed_text)
    except json.JSONDecodeError as exc:
        return [f"not JSON ({exc.msg} at line {exc.lineno})"]
    if not isinstance(installed, dict):
        return ["not a JSON object"]
    found = []
    for name, value in expected.items():
        if name not in installed:
            found.append(f"{name} missing (should be {json.dumps(value)})")
        elif installed[name] != value:
            found.append(f"{name} is {json.dumps(installed[name])}, should be {json.dumps(value)}")
    found += [f"{name} is set but not ours" for name in sorted(set(installed) - set(expected))]
    return found
