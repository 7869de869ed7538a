"""Prints everything of the host the guest could see through file metadata and listings.

Run by test_cross_process.py in several processes, each with its workspace under a parent
folder of a different path length: every line (and the fuel) must be the same.
"""

import os
import time

VISIBLE = ["/tmp", "/job", "/job/main.py", "/input", "/output", "/usr/local/lib"]
VISIBLE += [f"/input/{n}" for n in sorted(os.listdir("/input"))]
VISIBLE += [f"/usr/local/lib/{n}" for n in os.listdir("/usr/local/lib")]


def show(path):
    s = os.stat(path)
    times = (s.st_atime_ns, s.st_mtime_ns, s.st_ctime_ns)
    print(path, s.st_ino, s.st_dev, s.st_nlink, s.st_size, oct(s.st_mode), times)


for path in VISIBLE:
    show(path)
for folder in ("/input", "/usr/local/lib", "/tmp"):
    print(folder, os.listdir(folder), [(e.name, e.inode(), e.is_dir()) for e in os.scandir(folder)])
# what the guest writes itself: its times must not be the host clock's
for folder in ("/tmp", "/output"):
    os.makedirs(f"{folder}/made/sub", exist_ok=True)
    for name in ("b.txt", "a.txt", "c.txt"):
        with open(f"{folder}/made/{name}", "w") as f:
            f.write(name * 3)
    os.utime(f"{folder}/made/a.txt")  # "now": the virtual clock
    os.utime(f"{folder}/made/b.txt", ns=(1_700_000_000_123_456_789, 1_700_000_000_987_654_321))
    print(folder, os.listdir(f"{folder}/made"))
    for name in ("", "sub", "a.txt", "b.txt", "c.txt"):
        show(f"{folder}/made/{name}".rstrip("/"))
    with open(f"{folder}/made/c.txt", "a") as f:
        f.write("more")
        st = os.fstat(f.fileno())
        print("fstat", st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
print(os.path.samefile("/output/made/a.txt", "/output/made/a.txt"), os.path.samefile("/tmp/made/a.txt", "/output/made/a.txt"))
print(time.time_ns() > 0, sorted(os.walk("/output")))
