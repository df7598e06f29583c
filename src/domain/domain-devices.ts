/**
 * Every part of a libvirt domain definition that refers to storage or host state,
 * as plain data (parsed from the XML by the libvirt adapter). The migration plan is
 * built from this; views and services never see XML.
 */

export interface NetworkHost {
  name: string;
  port: string | null;
  /** tcp (default), rdma, unix… */
  transport: string | null;
}

export interface DeviceDisk {
  /** Target dev: vda, sdb, fda… */
  target: string;
  bus: string | null;
  device: 'disk' | 'cdrom' | 'floppy' | 'lun';
  /** libvirt's source type: file, block, network, volume, dir, nvme, vhostuser. */
  type: string;
  /** file= / dev= / dir= of the source; null for an empty tray or a network/volume source. */
  path: string | null;
  /** Driver type: qcow2, raw… (null when the XML does not say). */
  format: string | null;
  readonly: boolean;
  shareable: boolean;
  transient: boolean;
  /** For type='network': protocol (rbd, iscsi, nbd, gluster, http…), the image name and hosts. */
  network: { protocol: string; name: string | null; hosts: NetworkHost[]; secret: string | null } | null;
  /** For type='volume': the storage pool and volume. */
  volume: { pool: string; volume: string } | null;
  /** A <backingStore> with a source: the image sits on top of another one. */
  backingStore: string | null;
  /**
   * Only in the persistent definition, not in the running VM (e.g. `virsh attach-disk
   * --config` on a running VM): QEMU does not have it open, so a live move cannot mirror it.
   */
  configOnly?: boolean;
}

export interface DeviceTpm {
  model: string | null;
  /** emulator (swtpm), passthrough (host /dev/tpm0) or external. */
  backend: string;
  path: string | null;
}

export interface DeviceSummary {
  /** The element's type attribute (pci, usb, network, bridge, virtiofs…). */
  type: string;
  /** Host-side reference in words: "pci 0000:03:00.0", "bridge br0", "/srv/share". */
  source: string;
  /** For interfaces: the network / bridge / device name the destination must have. */
  hostName: string | null;
}

export interface DomainDevices {
  disks: DeviceDisk[];
  /** os/loader: firmware code (OVMF_CODE…, or a SeaBIOS replacement). */
  loader: { path: string; readonly: boolean; type: string | null } | null;
  /** os/nvram: this VM's UEFI variable store. */
  nvram: { path: string; template: string | null } | null;
  /** Direct kernel boot files. */
  kernel: string | null;
  initrd: string | null;
  dtb: string | null;
  tpms: DeviceTpm[];
  hostdevs: DeviceSummary[];
  interfaces: DeviceSummary[];
  filesystems: DeviceSummary[];
  /** <serial> elements in XML order; `path` only for type='file'. */
  serials: { type: string; path: string | null }[];
}

export const NO_DEVICES: DomainDevices = {
  disks: [], loader: null, nvram: null, kernel: null, initrd: null, dtb: null, tpms: [], hostdevs: [], interfaces: [], filesystems: [], serials: [],
};
