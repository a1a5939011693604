"""compare.py A.pt B.pt -> bit-identical? max abs diff; and the first iteration where traces differ."""
import sys, torch
def compare(pa, pb):
    a, b = torch.load(pa), torch.load(pb)
    assert a.keys() == b.keys()
    equal = all(torch.equal(a[k], b[k]) for k in a)
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    ndiff = sum(not torch.equal(a[k], b[k]) for k in a)
    return equal, diff, ndiff, len(a)
if __name__ == "__main__":
    print(compare(sys.argv[1], sys.argv[2]))
