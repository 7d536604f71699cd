using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace ERCache.Internal;

/// <summary>
/// Binds the <c>ERCache</c> section after checking every key and value against the options types, because the
/// configuration binder alone either throws at the first value that does not convert or drops it silently, ignores
/// misspelled keys, and reads a bare number as days for a <see cref="TimeSpan"/>. What does not bind is recorded in
/// <see cref="ERCacheOptions.BindingErrors"/>, by path, and left out; everything else is bound, so the validator
/// reports the binding errors and the other fields' problems together.
/// </summary>
internal static class ERCacheConfigurationBinder
{
    /// <summary>Binds <paramref name="section"/> into <paramref name="options"/>, recording what does not bind.</summary>
    /// <param name="section">The section to bind.</param>
    /// <param name="sectionPath">Its path, as messages name it.</param>
    /// <param name="options">Receives the values and the binding errors.</param>
    /// <param name="modelSections">Per-model subsections declared by adapter packages (<c>IERCacheBuilder.AddModelSection</c>):
    /// each adapter reads and checks its own, so they are not reported as unknown settings here.</param>
    public static void Bind(IConfiguration section, string sectionPath, ERCacheOptions options, IReadOnlyCollection<string> modelSections)
    {
        var errors = new List<BindingError>();
        CheckObject(section, sectionPath, typeof(ERCacheOptions), modelSections, errors);
        if (errors.Count == 0)
        {
            section.Bind(options);
            return;
        }

        options.BindingErrors.AddRange(errors);
        var bad = errors.Select(e => e.Path[(sectionPath.Length + 1)..]).ToArray();
        var good = section.AsEnumerable(makePathsRelative: true)
            .Where(kv => kv.Value is not null && !bad.Any(b => kv.Key.Equals(b, StringComparison.OrdinalIgnoreCase) || kv.Key.StartsWith(b + ":", StringComparison.OrdinalIgnoreCase)));
        new ConfigurationBuilder().AddInMemoryCollection(good).Build().Bind(options);
    }

    private static void CheckObject(IConfiguration section, string path, Type type, IReadOnlyCollection<string> modelSections, List<BindingError> errors)
    {
        var settings = type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod is { IsPublic: true })
            .ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var child in section.GetChildren())
        {
            string childPath = $"{path}:{child.Key}";
            if (type == typeof(ModelOptions) && modelSections.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
            {
                continue;
            }

            if (!settings.TryGetValue(child.Key, out var setting))
            {
                errors.Add(new(childPath, $"{childPath} is not a known setting; {type.Name} has {string.Join(", ", settings.Keys)}."));
                continue;
            }

            CheckValue(child, childPath, setting.PropertyType, modelSections, errors);
        }
    }

    private static void CheckValue(IConfigurationSection section, string path, Type type, IReadOnlyCollection<string> modelSections, List<BindingError> errors)
    {
        var target = Nullable.GetUnderlyingType(type) ?? type;
        bool hasChildren = section.GetChildren().Any();
        if (target == typeof(Dictionary<string, ModelOptions>))
        {
            foreach (var model in section.GetChildren())
            {
                CheckSection(model, $"{path}:{model.Key}", typeof(ModelOptions), modelSections, errors);
            }

            return;
        }

        if (target.IsArray)
        {
            foreach (var element in section.GetChildren())
            {
                if (!int.TryParse(element.Key, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                {
                    errors.Add(new($"{path}:{element.Key}", $"{path}:{element.Key} is not an array index; {path} is a list of values."));
                    continue;
                }

                CheckValue(element, $"{path}:{element.Key}", target.GetElementType()!, modelSections, errors);
            }

            return;
        }

        if (target.IsClass && target != typeof(string))
        {
            CheckSection(section, path, target, modelSections, errors);
            return;
        }

        if (hasChildren)
        {
            errors.Add(new(path, $"{path} must be a single value, not a section."));
        }
        else if (section.Value is { } value && Convert(value, target) is { } problem)
        {
            errors.Add(new(path, $"{path} {problem}"));
        }
    }

    private static void CheckSection(IConfigurationSection section, string path, Type type, IReadOnlyCollection<string> modelSections, List<BindingError> errors)
    {
        if (!string.IsNullOrEmpty(section.Value) && !section.GetChildren().Any())
        {
            errors.Add(new(path, $"{path} must be a section with settings, not the value '{section.Value}'."));
            return;
        }

        CheckObject(section, path, type, modelSections, errors);
    }

    /// <summary>Why <paramref name="value"/> does not convert to <paramref name="type"/>, or null when it does.</summary>
    private static string? Convert(string value, Type type)
    {
        var invariant = CultureInfo.InvariantCulture;
        if (type == typeof(string))
        {
            return null;
        }

        if (type == typeof(TimeSpan))
        {
            if (double.TryParse(value, NumberStyles.Float, invariant, out _))
            {
                return $"'{value}' is a bare number; write a duration such as 00:01:00 (hh:mm:ss) or 00:00:00.050 (a bare number would mean days).";
            }

            return TimeSpan.TryParse(value, invariant, out _) ? null : $"'{value}' is not a duration; write hh:mm:ss[.fff], such as 00:01:00.";
        }

        if (type.IsEnum)
        {
            bool named = !int.TryParse(value, NumberStyles.Integer, invariant, out _) &&
                Enum.GetNames(type).Any(n => string.Equals(n, value.Trim(), StringComparison.OrdinalIgnoreCase));
            if (named)
            {
                return null;
            }

            return UnknownName(type, string.Empty, value).TrimStart(); // "'x' is not a known ...; allowed: ..."
        }

        bool ok = type == typeof(bool) ? bool.TryParse(value, out _)
            : type == typeof(int) ? int.TryParse(value, NumberStyles.Integer, invariant, out _)
            : type == typeof(long) ? long.TryParse(value, NumberStyles.Integer, invariant, out _)
            : type == typeof(double) ? double.TryParse(value, NumberStyles.Float, invariant, out _)
            : type == typeof(float) ? float.TryParse(value, NumberStyles.Float, invariant, out _)
            : throw new InvalidOperationException($"ERCache's options have a setting of type {type.Name} the configuration check does not know.");
        return ok ? null : $"'{value}' is not {Describe(type)}.";
    }

    private static string Describe(Type type) =>
        type == typeof(bool) ? "true or false"
        : type == typeof(int) ? $"a whole number between {int.MinValue} and {int.MaxValue}"
        : type == typeof(long) ? "a whole number (64-bit)"
        : "a number";

    /// <summary>The message for a value that names no member of <paramref name="enumType"/>, with the allowed names.</summary>
    internal static string UnknownName(Type enumType, string path, string value) =>
        $"{path} '{value}' is not a known {EnumDescription(enumType)}; allowed: {string.Join(", ", Enum.GetNames(enumType))}.";

    private static string EnumDescription(Type enumType) =>
        enumType == typeof(EvictionStrategy) ? "eviction strategy"
        : enumType == typeof(StorageFormat) ? "storage format"
        : enumType.Name;
}
