using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace ERCache.Models;

/// <summary>
/// One published set of the registry's model versions, found by name (case-insensitive, as configured). Immutable:
/// a reload that adds, replaces or removes a version publishes a new directory, so a name never resolves to a retired
/// version through a directory published after it retired.
/// </summary>
/// <remarks>
/// <para>Callers pass the same few name strings on every request (literals, or a string read once from
/// configuration), and a case-insensitive lookup costs 5–10 ns of a 70 ns hit. So the directory also remembers, per
/// slot of a small table indexed by the string's identity hash, one string instance it has resolved: the same instance
/// again is one load and one reference compare. A name spelled by a new instance each time is found by the lookup as
/// before.</para>
/// <para>A slot is filled when empty and replaced only once in <see cref="ReplaceEvery"/> lookups that missed it, so a
/// name found by instance never makes callers write a shared cache line, and names built anew on every call cannot keep
/// a slot from a name passed as the same instance on every call. A slot's entry is one immutable object, read with one
/// load, so a name is never paired with another name's state. The table's strings stay referenced as long as the
/// directory (at most <see cref="MinSlots"/> or four per model).</para>
/// </remarks>
internal sealed class ModelDirectory
{
    /// <summary>The empty directory (before the first options were applied).</summary>
    public static readonly ModelDirectory Empty = new(FrozenDictionary<string, ModelVersionState>.Empty);

    private const int MinSlots = 16;
    private const int ReplaceEvery = 64;

    [ThreadStatic]
    private static int t_slowLookups;
    private readonly FrozenDictionary<string, ModelVersionState> _byName;
    private readonly ResolvedName?[] _byInstance;

    public ModelDirectory(FrozenDictionary<string, ModelVersionState> byName)
    {
        _byName = byName;
        _byInstance = new ResolvedName?[Math.Max(MinSlots, (int)BitOperations.RoundUpToPowerOf2((uint)byName.Count * 4))];
    }

    /// <summary>The model names, as configured.</summary>
    public IReadOnlyCollection<string> Names => _byName.Keys;

    /// <summary>The current version of every model.</summary>
    public IEnumerable<ModelVersionState> States => _byName.Values;

    public int Count => _byName.Count;

    /// <summary>The state of <paramref name="model"/> (any casing); false when no such model is configured.</summary>
    public bool TryGet(string model, [MaybeNullWhen(false)] out ModelVersionState state)
    {
        int slot = SlotOf(model);
        if (_byInstance[slot] is { } resolved && ReferenceEquals(resolved.Name, model))
        {
            state = resolved.State;
            return true;
        }

        return TryGetByLookup(model, slot, out state);
    }

    private bool TryGetByLookup(string model, int slot, [MaybeNullWhen(false)] out ModelVersionState state)
    {
        if (!_byName.TryGetValue(model, out state))
        {
            return false; // an unknown name takes no slot
        }

        // An empty slot is taken; a taken one is replaced once in ReplaceEvery slow lookups of this thread, so an instance
        // used once (a name built per call) cannot keep a slot from a name used on every call, and two hot names that
        // share a slot write it rarely.
        if (Volatile.Read(ref _byInstance[slot]) is null || ++t_slowLookups % ReplaceEvery == 0)
        {
            Volatile.Write(ref _byInstance[slot], new ResolvedName(model, state));
        }

        return true;
    }

    /// <summary>Whether <paramref name="model"/>, this very instance, is found by its identity now (for tests).</summary>
    internal bool ResolvesByInstance(string model) => ReferenceEquals(Volatile.Read(ref _byInstance[SlotOf(model)])?.Name, model);

    /// <summary>The identity table's slot of this string instance (the same name spelled by another instance may have
    /// another).</summary>
    internal int SlotOf(string model) => RuntimeHelpers.GetHashCode(model) & (_byInstance.Length - 1);

    /// <summary>The case-insensitive lookup alone (a reload comparing the sets it replaces).</summary>
    public bool TryGetByName(string model, [MaybeNullWhen(false)] out ModelVersionState state) => _byName.TryGetValue(model, out state);

    /// <summary>A string instance this directory resolved, and what to.</summary>
    private sealed class ResolvedName(string name, ModelVersionState state)
    {
        public string Name { get; } = name;

        public ModelVersionState State { get; } = state;
    }
}
