; Inno Setup script: a Windows installer for the PyInstaller onedir in dist\tumorchain-workstation.
; UNTESTED here (built by installers/ci/bundle.yml on a Windows runner).   iscc /DAppVersion=0.1.0 tumorchain.iss
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
[Setup]
AppId={{6B1B8B0E-3C55-4C8B-9B53-7A1C0E2D4F10}
AppName=TumorChain Workstation
AppVersion={#AppVersion}
AppPublisher=TumorChain Workstation developers
DefaultDirName={autopf}\TumorChain Workstation
DefaultGroupName=TumorChain Workstation
OutputDir=..\..\dist
OutputBaseFilename=tumorchain-workstation-{#AppVersion}-windows-setup
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
Compression=lzma2/fast
SolidCompression=no
PrivilegesRequiredOverridesAllowed=dialog
; drawn from the SVG icon by the PyInstaller spec (installers/bundle/make_icons.py) before this runs
SetupIconFile=..\..\build\icons\tumorchain.ico
UninstallDisplayIcon={app}\tumorchain-workstation.exe

[Files]
Source: "..\..\dist\tumorchain-workstation\*"; DestDir: "{app}"; Flags: recursesubdirs ignoreversion

[Icons]
Name: "{group}\TumorChain Workstation"; Filename: "{app}\tumorchain-workstation.exe"
Name: "{group}\TumorChain Workstation (demo case)"; Filename: "{app}\tumorchain-workstation.exe"; Parameters: "--demo"
Name: "{group}\Uninstall TumorChain Workstation"; Filename: "{uninstallexe}"
