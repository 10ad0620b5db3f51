; The Voxboard installer for Windows (NSIS 3, built by scripts/windows-build with makensis).
;
; Per user, no administrator rights: installs to %LOCALAPPDATA%\Programs\Voxboard, adds a
; Start-menu shortcut and registers its uninstaller under HKCU. Installing over an older version
; replaces it in place (same folder, same uninstaller entry). `setup.exe /S` installs silently,
; `Uninstall.exe /S` uninstalls silently. The user's board (%APPDATA%\voxboard) is never removed.
;
; makensis defines (scripts/windows-build passes them):
;   VERSION    the app's version, e.g. 0.1.0
;   VERSION4   the same as four numbers, e.g. 0.1.0.0
;   STAGE      folder with what to install: voxboard.exe, README.txt, LICENSE-*.txt,
;              THIRD-PARTY-LICENSES.txt, assets\sounds\*
;   ICON       the .ico of the app
;   OUTFILE    where to write the installer

!macro REQUIRE NAME
  !ifndef ${NAME}
    !error "define ${NAME} (-D${NAME}=...): scripts/windows-build passes VERSION, VERSION4, STAGE, ICON, OUTFILE"
  !endif
!macroend
!insertmacro REQUIRE VERSION
!insertmacro REQUIRE VERSION4
!insertmacro REQUIRE STAGE
!insertmacro REQUIRE ICON
!insertmacro REQUIRE OUTFILE

Unicode true
Target amd64-unicode          ; a 64-bit installer for a 64-bit app
SetCompressor /SOLID lzma
RequestExecutionLevel user
ManifestDPIAware true

!define APP "Voxboard"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\Voxboard"
!define APP_KEY "Software\Voxboard"

Name "${APP}"
Caption "${APP} ${VERSION} Setup"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\Voxboard"
; An earlier install's folder wins, so an upgrade lands where the old version is.
InstallDirRegKey HKCU "${APP_KEY}" "InstallDir"
BrandingText "${APP} ${VERSION}"

VIProductVersion "${VERSION4}"
VIFileVersion "${VERSION4}"
VIAddVersionKey /LANG=1033 "ProductName" "${APP}"
VIAddVersionKey /LANG=1033 "ProductVersion" "${VERSION}"
VIAddVersionKey /LANG=1033 "FileVersion" "${VERSION}"
VIAddVersionKey /LANG=1033 "FileDescription" "${APP} ${VERSION} Setup"
VIAddVersionKey /LANG=1033 "CompanyName" "Voxboard developers"
VIAddVersionKey /LANG=1033 "LegalCopyright" "MIT OR Apache-2.0"

!include "MUI2.nsh"
!include "FileFunc.nsh"

!define MUI_ICON "${ICON}"
!define MUI_UNICON "${ICON}"
!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\voxboard.exe"
!define MUI_FINISHPAGE_RUN_TEXT "Start Voxboard"
!define MUI_FINISHPAGE_SHOWREADME "$INSTDIR\README.txt"
!define MUI_FINISHPAGE_SHOWREADME_NOTCHECKED

!insertmacro MUI_PAGE_LICENSE "${STAGE}\LICENSE-MIT.txt"
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Function .onInit
  SetShellVarContext current
FunctionEnd

Function un.onInit
  SetShellVarContext current
FunctionEnd

Section "Voxboard" SecMain
  SectionIn RO
  SetOutPath "$INSTDIR"
  ; An upgrade: files an older version shipped and this one does not are removed first.
  RMDir /r "$INSTDIR\assets\sounds"
  File "${STAGE}\voxboard.exe"
  File "${STAGE}\README.txt"
  File "${STAGE}\LICENSE-MIT.txt"
  File "${STAGE}\LICENSE-APACHE.txt"
  File "${STAGE}\THIRD-PARTY-LICENSES.txt"
  SetOutPath "$INSTDIR\assets\sounds"
  File "${STAGE}\assets\sounds\*.*"
  SetOutPath "$INSTDIR"

  WriteUninstaller "$INSTDIR\Uninstall.exe"
  CreateShortcut "$SMPROGRAMS\Voxboard.lnk" "$INSTDIR\voxboard.exe" "" "$INSTDIR\voxboard.exe" 0 \
    SW_SHOWNORMAL "" "A soundboard for Discord voice"

  WriteRegStr HKCU "${APP_KEY}" "InstallDir" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "${APP}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "Voxboard developers"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\voxboard.exe,0"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\Uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\Uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" "$0"
SectionEnd

Section "Uninstall"
  Delete "$SMPROGRAMS\Voxboard.lnk"
  Delete "$INSTDIR\voxboard.exe"
  Delete "$INSTDIR\README.txt"
  Delete "$INSTDIR\LICENSE-MIT.txt"
  Delete "$INSTDIR\LICENSE-APACHE.txt"
  Delete "$INSTDIR\THIRD-PARTY-LICENSES.txt"
  RMDir /r "$INSTDIR\assets\sounds"
  RMDir "$INSTDIR\assets"
  Delete "$INSTDIR\Uninstall.exe"
  ; Only an empty folder goes: anything the user put there stays.
  RMDir "$INSTDIR"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
  DeleteRegKey HKCU "${APP_KEY}"
SectionEnd
