"""``python -m mity_cost.ui.probe``: what this desktop offers Qt, as one line of JSON.

Run by ``mity-cost doctor`` in a child process (the command line itself never imports Qt).
"""

from __future__ import annotations

import json
import sys


def probe() -> dict[str, object]:
    """Tray availability, message support and a notification service on the session bus."""
    from PySide6.QtWidgets import QApplication, QSystemTrayIcon

    app = QApplication.instance() or QApplication(sys.argv[:1])
    answer: dict[str, object] = {
        "platform": QApplication.platformName(),
        "tray": QSystemTrayIcon.isSystemTrayAvailable(),
        "tray_messages": QSystemTrayIcon.supportsMessages(),
        "notifications": False,
    }
    try:
        from PySide6.QtDBus import QDBusConnection

        bus = QDBusConnection.sessionBus()
        if bus.isConnected():
            names = bus.interface().registeredServiceNames().value()
            if "org.freedesktop.Notifications" in names:
                answer["notifications"] = True
                answer["notifications_via"] = "org.freedesktop.Notifications on the session bus"
    except ImportError:
        pass
    if not answer["notifications"] and answer["tray"] and answer["tray_messages"]:
        answer["notifications"] = True
        answer["notifications_via"] = "tray balloon messages"
    del app
    return answer


def main() -> int:
    """Print the probe's JSON answer."""
    print(json.dumps(probe()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
