"""Run by the sslyze tool venv's Python (see security/sslyze_check.py), not imported by the project.

    python sslyze_scan.py HOST PORT ADDRESS PROFILE [CA_FILE]

Scans one TLS endpoint with the commands Mozilla's profile check needs and prints one JSON object:
{"compliant": bool, "issues": {criterion: description}, "curves": [...], "error": str | null}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from sslyze import (
        CertificateInfoExtraArgument,
        ScanCommandsExtraArguments,
        Scanner,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
        ServerScanStatusEnum,
    )
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
        MozillaTlsConfiguration,
        ServerNotCompliantWithTlsConfiguration,
        ServerScanResultIncomplete,
        TlsConfigurationEnum,
        check_server_against_tls_configuration,
    )

    host, port, address, profile = argv[0], int(argv[1]), argv[2], argv[3]
    ca_file = Path(argv[4]) if len(argv) > 4 and argv[4] else None
    extra = ScanCommandsExtraArguments(
        certificate_info=CertificateInfoExtraArgument(custom_ca_file=ca_file) if ca_file else None
    )
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(hostname=host, port=port, ip_address=address),
        network_configuration=ServerNetworkConfiguration(
            tls_server_name_indication=host, network_timeout=5, network_max_retries=1
        ),
        scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
        scan_commands_extra_arguments=extra,
    )
    scanner = Scanner()
    scanner.queue_scans([request])
    out: dict[str, object] = {"compliant": False, "issues": {}, "curves": [], "error": None}
    for result in scanner.get_results():
        if result.scan_status != ServerScanStatusEnum.COMPLETED:
            out["error"] = f"scan not completed: {result.connectivity_error_trace or result.scan_status}"
            break
        curves = result.scan_result.elliptic_curves.result if result.scan_result else None
        if curves is not None:
            out["curves"] = sorted(c.name for c in curves.supported_curves or [])
        config = MozillaTlsConfiguration.get(TlsConfigurationEnum(profile))
        try:
            check_server_against_tls_configuration(result, config)
            out["compliant"] = True
        except ServerNotCompliantWithTlsConfiguration as exc:
            out["issues"] = exc.issues
        except ServerScanResultIncomplete as exc:
            out["error"] = f"scan incomplete: {exc}"
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
