using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;

namespace ERCache.Tests;

/// <summary>
/// The package's folders depend on each other one way: Internal ← Diagnostics ← Storage ← Tiers ← Models ← the public
/// face, with Inference and Regional beside Tiers (used by Models, using neither each other nor Tiers). Public types
/// that are not the face (options, results, the delegate and store contracts) are the edge every layer may use.
/// Read from the compiled assembly: signatures, and every type, method and field a method body names.
/// </summary>
public sealed partial class LayeringTests
{
    private static readonly Dictionary<string, int> Ranks = new(StringComparer.Ordinal)
    {
        ["Internal"] = 0,
        ["Diagnostics"] = 1,
        ["Storage"] = 2,
        ["Tiers"] = 3,
        ["Inference"] = 3,
        ["Regional"] = 3,
        ["Models"] = 4,
        ["Face"] = 5,
    };

    private static readonly OpCode[] OneByte = new OpCode[256];
    private static readonly OpCode[] TwoByte = new OpCode[256];

    static LayeringTests()
    {
        foreach (var field in typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            var code = (OpCode)field.GetValue(null)!;
            ushort value = (ushort)code.Value;
            if (value < 0x100)
            {
                OneByte[value] = code;
            }
            else if ((value & 0xff00) == 0xfe00)
            {
                TwoByte[value & 0xff] = code;
            }
        }
    }

    [Fact]
    public void No_layer_references_a_layer_above_it_or_a_sibling()
    {
        var violations = Violations(typeof(EmbeddingCache).Assembly);
        Assert.True(violations.Count == 0, "Layering violations:\n" + string.Join("\n", violations));
    }

    [Fact]
    public void The_check_finds_a_lower_layer_that_reaches_up()
    {
        // This test assembly's own namespaces are not layers; a synthetic probe: Storage-ranked code naming a Models type.
        Assert.True(IsViolation(From: "Storage", To: "Models", targetIsEdge: false));
        Assert.True(IsViolation(From: "Tiers", To: "Inference", targetIsEdge: false));
        Assert.True(IsViolation(From: "Internal", To: "Face", targetIsEdge: false));
        Assert.False(IsViolation(From: "Models", To: "Tiers", targetIsEdge: false));
        Assert.False(IsViolation(From: "Storage", To: "Face", targetIsEdge: true));
        Assert.Equal("Models", LayerOf(typeof(Models.ModelRegistry)));
        Assert.Equal("Face", LayerOf(typeof(EmbeddingCache)));
        Assert.Null(LayerOf(typeof(ERCacheOptions))); // edge: public contract, usable everywhere
        Assert.Contains(typeof(Models.ModelVersionState), References(typeof(Models.ModelRegistry)));
    }

    [Fact]
    public void Configuration_holds_only_public_options()
    {
        var folder = Path.Combine(RepositoryRoot(), "src", "ERCache", "Configuration");
        var internals = Directory.EnumerateFiles(folder, "*.cs")
            .Where(f => InternalType().IsMatch(File.ReadAllText(f)))
            .Select(Path.GetFileName)
            .ToList();
        Assert.True(Directory.EnumerateFiles(folder, "*.cs").Any());
        Assert.Empty(internals);
    }

    private static List<string> Violations(Assembly assembly)
    {
        var found = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var type in assembly.GetTypes())
        {
            var outer = Outermost(type);
            if (LayerOf(outer) is not { } from)
            {
                continue;
            }

            foreach (var target in References(type))
            {
                var targetOuter = Outermost(target);
                if (targetOuter.Assembly != assembly || targetOuter == outer)
                {
                    continue;
                }

                string? to = LayerOf(targetOuter);
                if (to is not null && IsViolation(from, to, targetIsEdge: false))
                {
                    found.Add($"{from} {outer.FullName} -> {to} {targetOuter.FullName}");
                }
            }
        }

        return [.. found];
    }

    private static bool IsViolation(string From, string To, bool targetIsEdge) =>
        !targetIsEdge && From != To && Ranks[From] <= Ranks[To];

    /// <summary>The layer of a top-level type, or null for the public edge (and for generated helpers).</summary>
    private static string? LayerOf(Type type)
    {
        string ns = type.Namespace ?? string.Empty;
        if (ns.StartsWith("ERCache.", StringComparison.Ordinal))
        {
            string folder = ns["ERCache.".Length..].Split('.')[0];
            if (folder == "Health")
            {
                return "Face";
            }

            return type.IsPublic && folder is not "Internal" and not "Models" ? null : folder;
        }

        if (ns is "ERCache" or "Microsoft.Extensions.DependencyInjection")
        {
            bool face = type == typeof(EmbeddingCache) || type == typeof(EmbeddingModel) || type == typeof(IEmbeddingCache) ||
                ns == "Microsoft.Extensions.DependencyInjection";
            return face || !type.IsPublic ? "Face" : null;
        }

        return null;
    }

    private static Type Outermost(Type type)
    {
        while (type.DeclaringType is { } declaring)
        {
            type = declaring;
        }

        return type.IsGenericType ? type.GetGenericTypeDefinition() : type;
    }

    /// <summary>Every type <paramref name="type"/> names: base, interfaces, fields, signatures, and method bodies.</summary>
    private static HashSet<Type> References(Type type)
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        var types = new HashSet<Type>();
        void Add(Type? t)
        {
            if (t is null)
            {
                return;
            }

            if (t.HasElementType)
            {
                Add(t.GetElementType());
                return;
            }

            if (t.IsGenericParameter || !types.Add(t))
            {
                return;
            }

            if (t.IsGenericType)
            {
                foreach (var argument in t.GetGenericArguments())
                {
                    Add(argument);
                }
            }
        }

        Add(type.BaseType);
        foreach (var i in type.GetInterfaces())
        {
            Add(i);
        }

        foreach (var field in type.GetFields(all))
        {
            Add(field.FieldType);
        }

        foreach (var method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
        {
            if (method is MethodInfo info)
            {
                Add(info.ReturnType);
            }

            foreach (var parameter in method.GetParameters())
            {
                Add(parameter.ParameterType);
            }

            foreach (var named in BodyReferences(method))
            {
                Add(named);
            }
        }

        return types;
    }

    private static IEnumerable<Type> BodyReferences(MethodBase method)
    {
        byte[]? il;
        try
        {
            il = method.GetMethodBody()?.GetILAsByteArray();
        }
        catch (BadImageFormatException)
        {
            yield break;
        }

        if (il is null)
        {
            yield break;
        }

        var module = method.Module;
        var typeArgs = method.DeclaringType is { IsGenericType: true } d ? d.GetGenericArguments() : null;
        var methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (int pos = 0; pos < il.Length;)
        {
            var code = il[pos] == 0xfe ? TwoByte[il[++pos]] : OneByte[il[pos]];
            pos++;
            switch (code.OperandType)
            {
                case OperandType.InlineType or OperandType.InlineMethod or OperandType.InlineField or OperandType.InlineTok:
                    var member = Resolve(module, BitConverter.ToInt32(il, pos), typeArgs, methodArgs);
                    if (member is Type t)
                    {
                        yield return t;
                    }
                    else if (member?.DeclaringType is { } declaring)
                    {
                        yield return declaring;
                    }

                    pos += 4;
                    break;
                case OperandType.InlineSwitch:
                    pos += 4 + (4 * BitConverter.ToInt32(il, pos));
                    break;
                case OperandType.InlineI8 or OperandType.InlineR:
                    pos += 8;
                    break;
                case OperandType.InlineNone:
                    break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar:
                    pos += 1;
                    break;
                case OperandType.InlineVar:
                    pos += 2;
                    break;
                default:
                    pos += 4;
                    break;
            }
        }
    }

    private static MemberInfo? Resolve(Module module, int token, Type[]? typeArgs, Type[]? methodArgs)
    {
        try
        {
            return module.ResolveMember(token, typeArgs, methodArgs);
        }
        catch (ArgumentException)
        {
            return null; // a token of another module's generic context: its declaring type is named elsewhere too
        }
    }

    private static string RepositoryRoot([CallerFilePath] string path = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", ".."));

    [GeneratedRegex(@"^\s*internal\s+(static\s+|sealed\s+|abstract\s+|readonly\s+|partial\s+|record\s+)*(class|struct|interface|enum|record)\s", RegexOptions.Multiline)]
    private static partial Regex InternalType();
}
